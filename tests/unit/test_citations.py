"""The answer's ``path:line`` references: finding them (rlm_cli.run.citations.find_refs) and checking
them against the loaded files (check_answer), with hand-made answers, hostile ones included."""

from __future__ import annotations

import pytest

from rlm_cli.context import ContextWriter
from rlm_cli.run import citations
from rlm_cli.run.citations import FileIndex, check_answer, find_refs, summary

FILES = [("src/app.py", 120), ("README.md", 10), ("<stdin>", 5), ("lib/util.py", 3), ("tests/util.py", 3),
         ("docs/my notes.txt", 4), ("node-v2.1/x_y.z.js", 8), ("Makefile", 2), ("empty.txt", 0)]


def refs(answer: str) -> list[str]:
    return [r.text for r in find_refs(answer)[0]]


def check(answer: str) -> dict:
    return check_answer(answer, FILES)


@pytest.mark.parametrize(("answer", "expected"), [
    ("see src/app.py:42.", ["src/app.py:42"]),
    ("(src/app.py:40-58)", ["src/app.py:40-58"]),
    ("src/app.py:40\u201358", ["src/app.py:40-58"]),  # en dash
    ("`src/app.py:42:7`, src/app.py:43:1: error", ["src/app.py:42", "src/app.py:43"]),
    ("[README.md:3](README.md) and **Makefile:2**", ["README.md:3", "Makefile:2"]),
    ("`docs/my notes.txt:2`", ["docs/my notes.txt:2"]),  # spaces only inside backticks
    ("node-v2.1/x_y.z.js:8;<stdin>:5", ["node-v2.1/x_y.z.js:8", "<stdin>:5"]),
    ("a.py:1,b.py:2 a.py:1 `a.py:1`", ["a.py:1", "b.py:2"]),  # in order, once each
    ("[the check](src/app.py#L12-L20), `README.md#L3`", ["src/app.py:12-20", "README.md:3"]),
])
def test_references_are_found_in_markdown_and_punctuation(answer, expected):
    assert refs(answer) == expected


@pytest.mark.parametrize("answer", [
    "http://host:8080/x and https://example.com:443/a.py:12 and file:///tmp/a.py:3",
    "C:\\src\\app.py:12 and D:\\x.py:1 and `C:\\src\\app.py:12`",  # Windows-looking
    "at 12:30, a ratio of 3:1, version v1.2:3, python3.11:4",
    "127.0.0.1:8080 api.example.com:443 localhost:5432 user@db.internal:22",
    "src/app.py:12abc src/app.py:12-x src/app.py:1234567890",
    "git@github.com:org/repo.git",
    "https://github.com/org/repo/blob/main/src/app.py#L12-L20",
])
def test_urls_windows_paths_times_versions_and_hosts_are_not_references(answer):
    assert check(answer)["checked"] == 0, check(answer)


def test_valid_and_invalid_references_with_reasons():
    report = check("Defined in src/app.py:42 (see also `src/app.py:100-120`), README.md:10, <stdin>:1, "
                   "app.py:5 and /home/me/proj/src/app.py:7 and ./README.md:2. But src/app.py:121, "
                   "nope.py:3, util.py:1, README.md:0, README.md:5-3, empty.txt:1 and src/gone/:4.")
    assert report["valid"] == ["src/app.py:42", "src/app.py:100-120", "README.md:10", "<stdin>:1", "app.py:5",
                               "/home/me/proj/src/app.py:7", "./README.md:2"]
    reasons = {i["ref"]: i["reason"] for i in report["invalid"]}
    assert reasons == {
        "src/app.py:121": "line 121 is past the end of the file, which has 120 line(s)",
        "nope.py:3": "no such file was loaded",
        "util.py:1": "ambiguous: 2+ loaded files end with util.py",
        "README.md:0": "line numbers start at 1",
        "README.md:5-3": "the range ends before it starts",
        "empty.txt:1": "line 1 is past the end of the file, which has 0 line(s)",
        "src/gone/:4": "no such file was loaded",
    }
    assert report["checked"] == 14 and report["truncated"] is False


def test_a_path_in_backticks_may_hold_spaces_and_is_flagged_when_missing():
    report = check("`docs/my notes.txt:4` and `docs/old notes.txt:1` and `a b:3` and `x.com:443`")
    assert report["valid"] == ["docs/my notes.txt:4"]
    assert report["invalid"] == [{"ref": "docs/old notes.txt:1", "reason": "no such file was loaded"}]


def test_a_suffix_match_names_the_file_it_was_checked_against():
    report = check("app.py:500")
    assert report["invalid"] == [{"ref": "app.py:500", "reason": "line 500 is past the end of the file "
                                  "(src/app.py), which has 120 line(s)"}]


def test_no_answer_no_report_and_an_answer_without_references():
    assert check_answer(None, FILES) is None
    assert check("42") == {"checked": 0, "valid": [], "invalid": [], "truncated": False}


def test_line_counts_come_from_the_loaded_context(tmp_path):
    """The checker reads the parent's FileEntry line counts: a last line without a newline counts."""
    writer = ContextWriter(tmp_path / "ctx.txt")
    writer.add("a.txt", "one\ntwo\nthree")
    writer.add("b.txt", "one\n")
    loaded = writer.finish()
    report = check_answer("a.txt:3 a.txt:4 b.txt:1 b.txt:2", loaded.files)
    assert report["valid"] == ["a.txt:3", "b.txt:1"]
    assert [i["ref"] for i in report["invalid"]] == ["a.txt:4", "b.txt:2"]


@pytest.mark.parametrize("hostile", [
    "a" * 2_000_000,                                  # one huge run of path characters, no colon
    "a/" * 1_000_000 + ":1",                          # a path far past the path bound
    "`" + "x" * 300 + "`" * 1000 + "a.py:" * 100_000,  # backticks and colons, no line numbers
    ":1" * 1_000_000,                                 # locations with no path
    "x.py:1:" * 300_000,                              # chained locations
])
def test_hostile_answers_take_bounded_work(hostile):
    """Linear-time scanning. Without the look-behind that keeps a match from starting inside a run of
    path characters, the first two cost O(512 x n) (measured: 0.2 s for 20,000 characters against
    0.0006 s, so about 25 s per answer here against 0.05 s). The scan stops at MAX_SCAN_CHARS."""
    report = check(hostile)
    assert report["checked"] <= citations.MAX_REFS
    assert report["truncated"] is (len(hostile) > citations.MAX_SCAN_CHARS)


def test_distinct_references_are_capped(monkeypatch):
    answer = " ".join(f"f{i}.py:{i + 1}" for i in range(2 * citations.MAX_REFS))
    report = check(answer)
    assert report["checked"] == citations.MAX_REFS and report["truncated"] is True
    monkeypatch.setattr(citations, "MAX_CANDIDATES", 10)
    assert check(answer)["checked"] == 10


def test_suffix_lookups_scale_to_many_files():
    index = FileIndex((f"pkg{i}/mod/file{i}.py", 10) for i in range(100_000))
    assert index.resolve("file99999.py") == ("pkg99999/mod/file99999.py", None)
    assert index.resolve("mod/file7.py") == ("pkg7/mod/file7.py", None)
    assert index.resolve("mod/nothing.py") == (None, "no such file was loaded")


def test_summary_for_people_and_for_edited_trajectories():
    headline, lines = summary(check("src/app.py:1 " + " ".join(f"x{i}.py:1" for i in range(12))), 10)
    assert headline == "13 reference(s) checked: 1 valid, 12 invalid"
    assert lines[0] == "x0.py:1: no such file was loaded" and lines[-1] == "... and 2 more invalid reference(s)"
    assert len(lines) == 11
    for junk in (None, "x", [], {"valid": "x", "invalid": [1, "y", None]}, {"invalid": {"a": 1}}):
        summary(junk)  # never raises


def test_a_saved_check_is_replayed_by_rlm_show_and_junk_in_an_edited_file_is_shown_safely():
    import io
    import json

    from rich.console import Console

    from rlm_cli.run.events import CitationsChecked
    from rlm_cli.trajectory.recorder import TrajectoryRecorder
    from rlm_cli.view.demo import EventScript
    from rlm_cli.view.render import RenderOptions, render
    from rlm_cli.view.tree import RunModel

    def shown(doc: dict) -> str:
        console = Console(record=True, width=200, file=io.StringIO())
        console.print(render(RunModel.from_trajectory(doc), RenderOptions.show()))
        return console.export_text()

    s = EventScript()
    s.finish()
    recorder = TrajectoryRecorder(None)
    for ev in [*s.events, CitationsChecked(check("see src/app.py:1 and src/app.py:999"))]:
        recorder(ev)
    doc = json.loads(recorder.render())
    assert doc["citations"]["invalid"][0]["ref"] == "src/app.py:999"
    out = shown(doc)
    assert "citations 2 reference(s) checked: 1 valid, 1 invalid" in out
    assert "src/app.py:999: line 999 is past the end of the file, which has 120 line(s)" in out
    for junk in ({"valid": 3, "invalid": [{"ref": "\x1b]52;c;QQ==\x07x.py:1", "reason": ["\x1b[2J"]}, 7]},
                 "a string", [1, 2]):
        out = shown({**doc, "citations": junk})
        assert "\x1b" not in out and "\x07" not in out


def test_page_references_into_converted_pdfs_are_checked():
    files = [("docs/report.pdf", 300), ("notes.txt", 10)]
    answer = ("See docs/report.pdf p.3, report.pdf, p. 2-4 and report.pdf page 40; gone.pdf p.1; report.pdf p.0; "
              "notes.txt p.2 and see p.3 are no page references; docs/report.pdf p.3 again")
    report = check_answer(answer, files, {"docs/report.pdf": 31})
    assert report["valid"] == ["docs/report.pdf p.3", "report.pdf p.2-4"]
    assert report["invalid"] == [
        {"ref": "report.pdf p.40", "reason": "page 40 is past the end of the document, which has 31 page(s)"},
        {"ref": "gone.pdf p.1", "reason": "no such file was loaded"},
        {"ref": "report.pdf p.0", "reason": "page numbers start at 1"},
    ]
    assert check_answer(answer, files)["checked"] == 0  # no page counts given: pages are not looked for


@pytest.mark.parametrize("hostile", ["a.pdf p.1 " * 200_000, "p." * 1_000_000, "a" * 2_000_000 + " p.1"])
def test_hostile_page_references_take_bounded_work(hostile):
    report = check_answer(hostile, [("a.pdf", 10)], {"a.pdf": 3})
    assert report["checked"] <= citations.MAX_REFS
