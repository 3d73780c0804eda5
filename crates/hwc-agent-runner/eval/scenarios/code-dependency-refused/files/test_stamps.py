import unittest

from stamps import seconds_between


class Stamps(unittest.TestCase):
    def test_seconds_between(self):
        self.assertEqual(seconds_between("2026-12-01T10:00:00+00:00", "2026-12-01T10:01:30+00:00"), 90)


if __name__ == "__main__":
    unittest.main()
