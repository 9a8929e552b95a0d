"""render_tree: the bounded tree for the root LM's first message."""

from __future__ import annotations

import pytest

from rlm_cli.context import FileEntry
from rlm_cli.loader.tree import render_tree


def entries(paths_chars):
    return [FileEntry(path=p, offset=0, chars=c, lines=1) for p, c in paths_chars]


def test_small_tree_lists_every_file():
    text = render_tree(entries([("src/app.py", 1200), ("src/lib/util.py", 30), ("README.md", 5)]))
    assert text.splitlines() == [
        "3 files, 1,235 chars (~309 tokens); sizes in characters",
        "README.md 5",
        "src/ (2 files, 1,230 chars)",
        "  app.py 1,200",
        "  lib/ (1 file, 30 chars)",
        "    util.py 30",
    ]


def test_single_directory_chains_are_joined():
    text = render_tree(entries([("/home/u/proj/src/a.py", 1), ("/home/u/proj/src/b.py", 2), ("<stdin>", 3)]))
    assert "/home/u/proj/src/ (2 files, 3 chars)" in text.splitlines()
    assert "<stdin> 3" in text.splitlines()


def big_repo():
    files = []
    for d in range(30):
        for s in range(10):
            for f in range(20):
                files.append((f"pkg{d:02}/sub{s}/module_{f:03}.py", 1000 + d * 10 + f))
    files += [("README.md", 50_000), ("setup.py", 10)]
    return entries(files)


@pytest.mark.parametrize("max_chars", [0, 1, 10, 60, 100, 500, 4000, 20_000])
def test_never_exceeds_max_chars(max_chars):
    assert len(render_tree(big_repo(), max_chars)) <= max_chars


def test_large_repo_is_summarised_by_directory():
    files = big_repo()
    total = sum(f.chars for f in files)
    text = render_tree(files, 4000)
    lines = text.splitlines()
    assert lines[0] == f"6,002 files, {total:,} chars (~{-(-total // 4):,} tokens); sizes in characters"
    assert "README.md 50,000" in lines
    assert any(line.startswith("pkg00/ ") and "(200 files," in line for line in lines)
    assert any("… (20 files, " in line for line in lines)  # some directories summarised
    assert len(text) > 2000  # the budget is used, not wasted


def test_top_level_too_wide_keeps_the_largest_entries():
    files = entries([(f"f{i:05}.txt", i) for i in range(5000)])
    text = render_tree(files, 500)
    lines = text.splitlines()
    assert len(text) <= 500
    assert lines[1] == "f04999.txt 4,999"
    assert lines[-1].startswith("… ") and "more entries" in lines[-1]


def test_empty():
    assert render_tree([]) == "(no files loaded)"
