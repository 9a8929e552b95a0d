"""The REPL child process. Standard library only; run as ``python -I child.py --sock FD ...``.

Protocol: newline-delimited JSON on a private socket (the inherited fd ``--sock``), never on fd 1/2,
so code that prints, writes to fd 1 directly, or starts threads and subprocesses cannot corrupt it.
fd 1 and fd 2 are anonymous files the parent made and keeps (it never opens anything by path that the
REPL can replace); each step truncates them first, and the parent reads what the step wrote (bounded)
through its own descriptors once the step is done. ``context`` and the file index also arrive as
inherited descriptors, so the child needs no path into the parent's directories. No message either
way exceeds 64 MiB (``MAX_MESSAGE_BYTES`` in ``child_repl.py`` and ``channel.py``).

parent -> child: ``{"type": "exec", "id", "code"}``, ``{"type": "get_var", "id", "name"}``,
                 ``{"type": "result", "id", "value"}`` (the answer to one of the child's requests)
child -> parent: ``{"type": "ready", "pid", "load_s", "load", "notes"}`` (``load``: how ``context``
                 was built, ``"in place"`` or ``"read"``),
                 ``{"type": "request", "id", "op", "args"}`` (op: llm_query, llm_query_batched,
                 rlm_query, rlm_query_batched),
                 ``{"type": "done", "id", "error", "final", "notes"}``, ``{"type": "var", "id", "value", "error"}``

The namespace holds ``context`` (str), ``files`` (read-only mapping path -> text, slicing ``context``
on access so the text is held once), the sub-call functions, ``FINAL``, ``FINAL_VAR`` and
``SHOW_VARS`` and ``grep`` (a line-aware search over ``files``). It persists across steps.

This file only starts things, with as few imports as it can: under ``-I`` the script's directory is
not on ``sys.path``, so its siblings are loaded by file path, read before the lockdown (a REPL started
again by a shell init reads them afterwards, from the read-only ``rlm_cli/repl`` it sees):
``child_sandbox.py`` (the lockdown, applied before any model code; as PID 1 of a fresh PID namespace
the child then becomes the init, a shell that starts this script again with ``--locked``, or forks
and stays a small Python init itself, which is why the rest is only read after it),
``child_context.py`` (building ``context`` without holding the file twice),
``child_grep.py`` (``grep``, ``search``, ``count``), ``child_code.py`` (``definitions``, ``callers``)
and ``child_repl.py`` (the protocol, the namespace, the step loop).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

_HERE = os.path.dirname(os.path.abspath(__file__))
_FLAGS = ("--sock", "--context", "--index", "--limits", "--lockdown", "--host-mntns", "--root", "--run-as",
          "--state-in", "--state-out", "--locked")


def parse_args(argv: list[str]) -> types.SimpleNamespace:
    """The command line: ``--sock FD --context FD --index FD`` (required: inherited descriptors, the
    context file and the JSON file index, read from their start), ``--limits JSON``,
    ``--lockdown WORKDIR``, ``--host-mntns ID``, ``--root JSON`` (what the REPL sees besides WORKDIR:
    ``{"read_only": [path, ...], "links": [[path, target], ...]}``), ``--run-as UID``, ``--locked NOTES``
    (JSON list: the lockdown was done by the namespace's init, which then became a shell and started
    this process; accepted only from a parent that is PID 1). Raises ``SystemExit`` (status 2) on an
    unknown flag, a flag without a value or a missing one."""
    args = types.SimpleNamespace(limits="", lockdown="", host_mntns="", root="", run_as="", state_in="",
                                 state_out="", locked=None)
    words = iter(argv)
    for flag in words:
        value = next(words, None)
        if flag not in _FLAGS or value is None:
            _usage(f"bad argument {flag!r}")
        setattr(args, flag[2:].replace("-", "_"), value)
    missing = [flag for flag in _FLAGS[:3] if not hasattr(args, flag[2:])]
    if missing or not all(getattr(args, name).isdigit() for name in ("sock", "context", "index")):
        _usage(f"missing or bad {', '.join(missing) or '--sock, --context or --index'}")
    args.sock, args.context, args.index = int(args.sock), int(args.context), int(args.index)
    if args.locked is not None and (os.getppid() != 1 or args.lockdown):
        _usage("--locked is for a REPL started by the namespace's init")
    for name in ("state_in", "state_out"):  # inherited descriptors: saved state to restore, and to save into
        value = getattr(args, name)
        if value and not value.isdigit():
            _usage(f"bad --{name.replace('_', '-')}")
        setattr(args, name, int(value) if value else None)
    return args


def _usage(message: str) -> None:
    print(f"child.py: {message}", file=sys.stderr)
    raise SystemExit(2)


def _read(name: str):
    """The spec and compiled code of the sibling module ``name`` (read now, executed later)."""
    spec = importlib.util.spec_from_file_location(f"rlm_repl_{name}", os.path.join(_HERE, f"{name}.py"))
    return spec, spec.loader.get_code(spec.name)


def _execute(spec, code) -> types.ModuleType:
    module = importlib.util.module_from_spec(spec)
    exec(code, module.__dict__)
    return module


def main() -> None:
    args = parse_args(sys.argv[1:])
    names = ("child_context", "child_grep", "child_code", "child_repl", "child_state")  # child_sandbox.SIBLINGS
    siblings = {}
    if args.locked is None:
        sandbox = _execute(*_read("child_sandbox"))
        shell_init = sandbox.shell_init_planned(args)
        if not shell_init:  # read before the lockdown: a REPL that switches uid may not read them after it
            siblings = {name: _read(name) for name in names}
        notes = sandbox.lock_down(args, shell_init)  # PID 1: it becomes the init there
    else:  # started by the init after its lockdown, whose limits, root and uid this process inherited
        import json
        import signal

        notes = json.loads(args.locked)
        if hasattr(signal, "SIGXFSZ"):
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # as child_sandbox._apply_limits
    # A PID 1 that becomes a shell init reads none of them: the REPL it starts reads them (as readable
    # by its uid: child_sandbox.shell_init_planned), from the read-only copy the lockdown keeps visible.
    siblings = siblings or {name: _read(name) for name in names}
    load_context = _execute(*siblings["child_context"]).load_context
    make_search_tools = _execute(*siblings["child_grep"]).make_tools
    make_code_tools = _execute(*siblings["child_code"]).make_code_tools

    def make_tools(context: str, spans: dict) -> dict:
        tools = make_search_tools(context, spans)
        return {**tools, **make_code_tools(context, spans, tools["grep"])}

    _execute(*siblings["child_repl"]).serve(args, notes, load_context, make_tools, _execute(*siblings["child_state"]))


if __name__ == "__main__":
    main()
