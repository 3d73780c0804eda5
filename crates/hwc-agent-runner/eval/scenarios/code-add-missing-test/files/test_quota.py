import unittest

from quota import remaining


class Remaining(unittest.TestCase):
    def test_left(self):
        self.assertEqual(remaining(1000, 400), 600)


if __name__ == "__main__":
    unittest.main()
