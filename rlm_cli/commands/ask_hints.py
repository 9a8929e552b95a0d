"""What ``rlm ask`` says when its arguments are probably not what the user meant.

Each rule looks only at the arguments, the file system and whether standard input is a pipe; none
reads standard input or follows anything. Two outcomes: a :class:`~rlm_cli.errors.UsageError` (exit
2) when the command cannot mean anything useful, and one-line notes (printed on stderr as ``rlm:
note: ...``) when it can but probably does not:

- the question first and a source last (``rlm ask "where is auth?" proj``): an error saying the
  QUESTION goes last;
- a question but no source while standard input is a pipe (``echo q | rlm ask "summarise this"``):
  an error pointing at ``-``;
- standard input is a pipe but no SOURCE is ``-`` (``cat x | rlm ask proj "q"``): a note that the
  pipe is ignored;
- a question that names an existing file (``rlm ask proj notes.md``): a note that it is taken as
  the question.
"""

from __future__ import annotations

import os

from rlm_cli.errors import UsageError


def _exists(arg: str) -> bool:
    """Whether ``arg`` names an existing file or directory (``-`` and URLs never do)."""
    from rlm_cli.loader.remote import looks_remote

    if arg == "-" or not arg or "\n" in arg or len(arg) > 4096 or looks_remote(arg):
        return False
    try:
        return os.path.exists(arg)
    except (OSError, ValueError):
        return False


def _shown(text: str, limit: int = 60) -> str:
    from rlm_cli.view.safe import inline

    return inline(text if len(text) <= limit else text[:limit - 1] + "…")


def stdin_is_pipe() -> bool:
    """Whether standard input is a pipe or a non-empty file (data the user may have meant to give
    with ``-``); a terminal, ``/dev/null`` or a closed stdin is not. Never reads it."""
    import stat

    try:
        st = os.fstat(0)
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_size > 0)


def check_arguments(sources: list[str], question: str, *, stdin_is_pipe: bool, following: bool) -> list[str]:
    """Notes for ``rlm ask SOURCE... QUESTION`` (see the module doc). ``stdin_is_pipe``: standard
    input is not a terminal; ``following``: ``-c``/``--resume`` (sources may be omitted). Raises
    :class:`UsageError` for a question given first or a missing ``-``."""
    notes: list[str] = []
    if sources and _exists(question) and not _exists(sources[0]) and " " in sources[0].strip():
        order = " ".join(_shown(s) for s in [*sources[1:], question])
        raise UsageError(f"the QUESTION goes last: rlm ask {order} \"{_shown(sources[0])}\"")
    if not sources and not following and stdin_is_pipe:
        raise UsageError(f"no SOURCE given; to ask about standard input, give - as the SOURCE: "
                         f"rlm ask - \"{_shown(question)}\"")
    if sources and stdin_is_pipe and "-" not in sources:
        notes.append("standard input is a pipe but no SOURCE is -: it is ignored (add - to read it)")
    elif _exists(question) and " " not in question.strip():
        notes.append(f"the question \"{_shown(question)}\" is also a file name; it is taken as the question "
                     "(to load it, put it before the question)")
    return notes
