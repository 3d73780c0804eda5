import unittest

from slugify import slugify


class SlugifyTest(unittest.TestCase):
    def test_spaces_and_case(self):
        self.assertEqual(slugify("Hello World"), "hello-world")

    def test_punctuation(self):
        self.assertEqual(slugify("GPU: 3x H200!"), "gpu-3x-h200")


if __name__ == "__main__":
    unittest.main()
