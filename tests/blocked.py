"""Python code that makes packages unimportable, as if they were not installed: a prelude for a
``python -c`` subprocess that then runs segue's CLI (the tests of the optional extras)."""

from __future__ import annotations


def without(*packages: str) -> str:
    """A prelude blocking ``packages`` (top-level names) and running ``segue.cli.main`` on
    ``sys.argv[1:]``."""
    return f"""
import importlib.abc, sys
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {packages!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, NotInstalled())
from segue.cli import main
sys.exit(main(sys.argv[1:]))
"""
