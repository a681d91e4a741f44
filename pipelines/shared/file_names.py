"""One spelling per file name that an input lists (a manifest row's ``path``, a released entry's ``file_path``),
so that ``a/./b.jpg``, ``a//b.jpg`` and ``a/b.jpg`` are one file with one key, and a duplicate is found."""

from __future__ import annotations

import posixpath

from common.paths import PathOutsideRoot


def one_spelling(name: str) -> str:
    """``name`` relative to its folder with its ``.`` parts, doubled ``/`` and ``x/..`` pairs folded away
    (``posixpath.normpath``); PathOutsideRoot when what is left is absolute or starts with ``..``."""
    spelled = posixpath.normpath(name)
    if spelled == ".." or spelled.startswith(("../", "/")):
        raise PathOutsideRoot(f"file name {name[:80]!r} leaves its folder")
    return spelled
