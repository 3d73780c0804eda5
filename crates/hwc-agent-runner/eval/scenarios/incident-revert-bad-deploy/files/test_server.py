import unittest

from server import accepts


class Accepts(unittest.TestCase):
    def test_small_body(self):
        self.assertTrue(accepts(b'0123456789'))


if __name__ == '__main__':
    unittest.main()
