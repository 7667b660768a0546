"""Tests of the module-cycle check: it must catch what it exists to catch, and only that."""

import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_modules  # noqa: E402


def crate(files: dict[str, str]) -> Path:
    root = Path(tempfile.mkdtemp())
    for name, text in files.items():
        p = root / "src" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return root


def problems(files: dict[str, str]) -> list[str]:
    root = crate(files)
    saved = check_modules.ROOT
    check_modules.ROOT = root.parent
    try:
        return check_modules.check(root)
    finally:
        check_modules.ROOT = saved


class CheckModules(unittest.TestCase):
    def test_two_siblings_that_use_each_other_are_a_cycle(self):
        got = problems({
            "lib.rs": "mod a;\nmod b;\n",
            "a.rs": "use crate::b::Thing;\n",
            "b.rs": "pub struct Thing;\nfn f() -> crate::a::Other { todo!() }\n",
        })
        self.assertEqual(len(got), 1)
        self.assertIn("a <-> b", got[0])

    def test_a_cycle_through_a_use_tree_and_nested_modules(self):
        got = problems({
            "lib.rs": "mod p;\n",
            "p/mod.rs": "mod x;\nmod y;\n",
            "p/x.rs": "use super::{y::{Y as Why}, X2};\n",
            "p/y.rs": "use crate::p::x::*;\n",
        })
        self.assertEqual(len(got), 1)
        self.assertIn("under crate::p: x <-> y", got[0])

    def test_parents_children_comments_and_strings_are_not_edges(self):
        got = problems({
            "lib.rs": "mod a;\nmod b;\npub use a::*;\n",
            "a/mod.rs": "mod inner;\npub use inner::*;\npub const K: u8 = 1;\n",
            "a/inner.rs": "use super::K;\n",
            "b.rs": "use crate::a::K;\n// crate::b from a comment\nconst S: &str = \"crate::b\";\n",
        })
        self.assertEqual(got, [])

    def test_an_inline_test_module_resolves_super_to_its_own_file(self):
        got = problems({
            "lib.rs": "mod a;\nmod b;\n",
            "a.rs": "pub fn f() {}\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
            "b.rs": "use crate::a::f;\n",
        })
        self.assertEqual(got, [])


if __name__ == "__main__":
    unittest.main()
