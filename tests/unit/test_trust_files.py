"""``files`` keys never collide (issue #10, class 10): file names that differ only in undecodable
bytes or in a line break, or that look like another name's escape, each keep their own content."""

from __future__ import annotations

import os
import sys

import pytest

from rlm_cli.loader import LoadOptions, load_sources


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="arbitrary bytes in file names")
def test_names_that_display_alike_stay_distinct(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    names = [b"a\xff", b"a\xfe", b"a\nb", b"a\\nb", b"a\\xff", b"a\xff (2)"]
    for i, name in enumerate(names):
        with open(os.path.join(os.fsencode(root), name), "w") as fh:
            fh.write(f"content number {i}\n")
    loaded = load_sources([str(root)], LoadOptions(default_excludes=False), tmp_path / "ctx.txt")
    keys = [f.path for f in loaded.files]
    assert len(keys) == len(names) == len(set(keys))
    text = (tmp_path / "ctx.txt").read_text(encoding="utf-8")
    for i in range(len(names)):
        assert f"content number {i}" in text
    for key in keys:
        assert "\n" not in key and "\r" not in key
