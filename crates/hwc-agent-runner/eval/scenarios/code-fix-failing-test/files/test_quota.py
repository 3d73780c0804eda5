import unittest

from quota import remaining


class Remaining(unittest.TestCase):
    def test_left(self):
        self.assertEqual(remaining(1000, 400), 600)

    def test_spent_out(self):
        self.assertEqual(remaining(1000, 1200), 0)


if __name__ == "__main__":
    unittest.main()
