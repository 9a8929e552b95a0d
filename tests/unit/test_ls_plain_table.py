"""rlm ls's files table on a pipe: laid out directly, byte for byte what Rich prints (issue 24 point 2)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rlm_cli.commands.ls import _files_table, _plain_table, _rich_table
from rlm_cli.context import FileEntry


def loaded(*files: FileEntry) -> SimpleNamespace:
    return SimpleNamespace(files=list(files))


CASES = [
    loaded(FileEntry("a.py", 0, 12, 1)),
    loaded(FileEntry("src/x.py", 0, 1_234_567, 98_765), FileEntry("b", 5, 0, 0),
           FileEntry("docs/guide.pdf", 9, 5000, 80, converted="converted from PDF, 3 pages"),
           FileEntry("old.txt", 20, 77, 3, encoding="latin-1")),
    loaded(FileEntry("日本語/ファイル.txt", 0, 10, 1), FileEntry("e\u0301t\u00e9 [x].md", 3, 4, 1),
           FileEntry("tab\there\nnewline\x1b[31m.txt", 9, 1, 1), FileEntry("emoji 🎉 :smile:.txt", 12, 2, 1)),
    loaded(FileEntry("trailing space ", 0, 1, 1), FileEntry("x" * 300, 0, 1, 1)),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("width", [10_000, 400])
def test_plain_table_is_what_rich_prints(case, width):
    plain = _plain_table(case, width)
    assert plain is not None
    assert plain == _rich_table(case, width, colour=False)


def test_a_path_that_must_fold_goes_to_rich():
    case = loaded(FileEntry("d/" + "long" * 40 + ".txt", 0, 10, 1))
    assert _plain_table(case, 80) is None
    out = _files_table(case, 80, colour=False)
    assert out == _rich_table(case, 80, colour=False)
    assert all(len(line) <= 80 for line in out.splitlines())


def test_colour_keeps_rich():
    case = CASES[1]
    assert "\x1b[" in _files_table(case, 200, colour=True)


def test_the_pipe_width_is_the_table_modules_and_needs_no_rich(monkeypatch):
    import io
    import subprocess
    import sys

    from rlm_cli.commands import ls
    from rlm_cli.view.table import WIDE, stream_width

    assert ls.PIPE_WIDTH == WIDE
    for columns in (None, "123", "0", "wide"):
        if columns is None:
            monkeypatch.delenv("COLUMNS", raising=False)
        else:
            monkeypatch.setenv("COLUMNS", columns)
        assert ls._width(io.StringIO(), False) == stream_width(io.StringIO())
    # the listing of an ASCII tree on a pipe imports no Rich module
    code = ("import sys\nfrom types import SimpleNamespace\nfrom rlm_cli.context import FileEntry\n"
            "from rlm_cli.commands.ls import listing_text, _width\n"
            "t = listing_text(SimpleNamespace(origins=[], skipped=[], est_tokens=1, files=[FileEntry('a.py', 0, 3, 1)]),"
            " _width(sys.stdout, False))\n"
            "print(sorted(m for m in sys.modules if m.startswith('rich.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
