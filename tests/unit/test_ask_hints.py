"""``rlm ask``'s argument hints (issue 20, point 6): the question given first, a pipe with no ``-``,
a question that names a file."""

from __future__ import annotations

import pytest

from rlm_cli.commands.ask_hints import check_arguments
from rlm_cli.errors import UsageError


@pytest.fixture
def proj(tmp_path, monkeypatch):
    (tmp_path / "proj").mkdir()
    (tmp_path / "notes.md").write_text("x")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_question_first_is_an_error_that_shows_the_order(proj):
    with pytest.raises(UsageError, match=r'the QUESTION goes last: rlm ask proj "where is auth\?"'):
        check_arguments(["where is auth?"], "proj", stdin_is_pipe=False, following=False)


def test_a_pipe_without_dash(proj):
    with pytest.raises(UsageError, match='give - as the SOURCE: rlm ask - "summarise this"'):
        check_arguments([], "summarise this", stdin_is_pipe=True, following=False)
    assert check_arguments(["proj"], "q?", stdin_is_pipe=True, following=False) == [
        "standard input is a pipe but no SOURCE is -: it is ignored (add - to read it)"]
    assert check_arguments(["proj", "-"], "q?", stdin_is_pipe=True, following=False) == []
    assert check_arguments([], "and then?", stdin_is_pipe=True, following=True) == []


def test_a_question_naming_a_file_gets_a_note(proj):
    notes = check_arguments(["proj"], "notes.md", stdin_is_pipe=False, following=False)
    assert len(notes) == 1 and "notes.md" in notes[0] and "taken as the question" in notes[0]


def test_ordinary_calls_say_nothing(proj):
    assert check_arguments(["proj"], "where is auth handled?", stdin_is_pipe=False, following=False) == []
    assert check_arguments(["https://example.com/x"], "what is it?", stdin_is_pipe=False, following=False) == []
    assert check_arguments(["-"], "why did it fail?", stdin_is_pipe=True, following=False) == []
