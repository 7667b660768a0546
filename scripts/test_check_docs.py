"""Tests of the docs link check: broken files and headings are caught, good links pass."""

import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_docs  # noqa: E402


class CheckDocs(unittest.TestCase):
    def setUp(self):
        self.root = Path(tempfile.mkdtemp())
        (self.root / "docs").mkdir()
        self.saved = check_docs.ROOT
        check_docs.ROOT = self.root

    def tearDown(self):
        check_docs.ROOT = self.saved

    def write(self, name, text):
        p = self.root / name
        p.write_text(text)
        return p

    def test_anchors_follow_github(self):
        self.assertEqual(check_docs.anchor("Sending (the `sender` function)"), "sending-the-sender-function")
        self.assertEqual(check_docs.anchor("For event producers: the send-job contract"), "for-event-producers-the-send-job-contract")

    def test_a_missing_file_or_heading_is_caught_and_good_links_pass(self):
        self.write("docs/a.md", "# A\n\n## The inbound event (for bot builders)\n")
        page = self.write(
            "README.md",
            "[ok](docs/a.md#the-inbound-event-for-bot-builders) [web](https://x.y/z)\n"
            "[gone](docs/b.md) [no heading](docs/a.md#nope)\n"
            "```\n[in a fence](docs/ignored.md)\n```\n",
        )
        got = check_docs.broken_links(page)
        self.assertEqual(len(got), 2, got)
        self.assertIn("docs/b.md: no such file", got[0])
        self.assertIn("no such heading", got[1])


if __name__ == "__main__":
    unittest.main()
