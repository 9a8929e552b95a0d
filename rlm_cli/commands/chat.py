"""``rlm chat SOURCE...``: follow-up questions at a prompt, each one a turn of the same conversation.

Each question runs like ``rlm ask`` (the first one over SOURCE..., the next ones like ``rlm ask
--resume``: the root LM's history and the REPL's variables carry over, changed files are reloaded),
with the live view in between. Line editing and history come from the standard library's
``readline`` (history file ``<data dir>/chat_history``, mode 0600). ``/exit`` or Ctrl-D leaves;
Ctrl-C during a question stops that question (its trajectory is written) and returns to the prompt;
Ctrl-C at the prompt clears the line. SIGTERM or SIGHUP end the chat (143, 129).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

import typer

from rlm_cli.commands.options import (
    BUDGET,
    LOADING,
    MODEL,
    SESSION,
    BudgetOptions,
    ModelOptions,
    SessionOptions,
    option_groups,
)
from rlm_cli.errors import EXIT_OK, RlmError, UsageError

HELP = ("Ask follow-up questions about SOURCE... at a prompt: each question is a turn of one conversation "
        "(the root LM's history and the REPL's variables carry over). /exit or Ctrl-D leaves; Ctrl-C stops "
        "the current question. Budgets apply to each question.")
PROMPT = "rlm> "
EXIT_WORDS = ("/exit", "/quit")
HISTORY_LINES = 1000
COMMANDS_HELP = ("Commands (answered here, never sent to the model):\n"
                 "  /help          this list\n"
                 "  /exit, /quit   leave (Ctrl-D too); the conversation is kept\n"
                 "Anything else is a question about the sources. Ctrl-C stops the current question.")


@option_groups(model=MODEL, budget=BUDGET, load=LOADING, session=SESSION)
def chat_command(
    sources: list[str] = typer.Argument(None, metavar="SOURCE...", help="Files or directories to ask about."),
    *, model: ModelOptions, budget: BudgetOptions, load, session: SessionOptions,
) -> None:
    sources = list(sources or [])
    if not sources and not session.following:
        raise UsageError("give at least one SOURCE, e.g. rlm chat src/")
    if "-" in sources:
        raise UsageError("rlm chat reads its questions from the terminal: standard input (-) cannot be a source")
    from rlm_cli.loader.remote import looks_remote

    for src in sources:
        if not looks_remote(src) and not os.path.lexists(src):
            raise UsageError(f"no such file or directory: {src}")
    from rlm_cli.commands.ask import settings_for
    from rlm_cli.run.session import continue_session

    first = continue_session(session.resume, sources) if session.following else None  # checked before the prompt
    settings = settings_for(model, budget, first)
    limits = settings.limits(max_output_chars=budget.max_output_chars)
    print_banner(first.sources if first is not None else sources, settings, continued=first is not None)
    code = chat_loop(sources, first, lambda src, question, link: _ask(src, question, link, load, settings, limits,
                                                                      model, budget.repl_network))
    raise typer.Exit(code)


def print_banner(sources: list[str], settings, continued: bool) -> None:
    """What the chat is about, on stderr: the sources, the models, how to get help and leave."""
    from rlm_cli.loader.remote import redact
    from rlm_cli.view.safe import inline

    shown = ", ".join(inline(redact(s), 120) for s in sources[:5]) + (f" and {len(sources) - 5} more"
                                                                       if len(sources) > 5 else "")
    sub = settings.sub_model if settings.sub_model != settings.model else "the same"
    print(f"rlm chat: {'continuing a conversation about' if continued else 'asking about'} {shown}\n"
          f"  root {inline(settings.model, 200)}, sub-LM {inline(sub, 200)}. "
          "Type a question; /help lists commands, /exit leaves.", file=sys.stderr)


def local_command(line: str) -> str | None:
    """What a ``/command`` line answers locally (help, or an unknown command named), or None when
    ``line`` is a question (a path such as ``/etc/hosts is what?`` is one: its first word holds
    another ``/``). ``/exit`` and ``/quit`` are handled by the loop."""
    word = line.split(maxsplit=1)[0]
    if not word.startswith("/") or "/" in word[1:] or word in EXIT_WORDS:
        return None
    if word in ("/help", "/?"):
        return COMMANDS_HELP
    from rlm_cli.view.safe import inline

    return f"unknown command {inline(word, 40)}: /help lists the commands (nothing was sent to the model)"


def _ask(sources, question, link, load_options, settings, limits, model: ModelOptions, repl_network) -> int:
    from rlm_cli.commands.ask import run_ask

    link.settings = settings
    return run_ask(link.sources, question, load_options, settings=settings,
                   limits=limits, system=model.system, as_json=False, quiet=False, log=None, no_log=False,
                   request_timeout=model.request_timeout, repl_network=repl_network, session=link)


def chat_loop(sources: list[str], first, ask) -> int:
    """Read questions until ``/exit``, end of input or a terminating signal; run each with
    ``ask(sources, question, link) -> exit code``, ``link`` the turn's
    :class:`~rlm_cli.run.session.SessionLink` (``first``: the one to continue, or None for a new
    conversation). Returns the chat's exit code: 0, or 128 + a SIGTERM/SIGHUP's number."""
    from rlm_cli.run.session import continue_session, new_session

    history = _History()
    session_id = first.id if first is not None else None
    link = first
    try:
        while True:
            question = _read(PROMPT)
            if question is None:
                return EXIT_OK
            question = question.strip()
            if not question:
                continue
            if question in EXIT_WORDS:
                return EXIT_OK
            answer = local_command(question)
            if answer is not None:
                print(answer, file=sys.stderr)
                continue
            try:
                if link is None:
                    link = continue_session(session_id, []) if session_id else new_session(sources)
                session_id = link.id
                code = ask(sources, question, link)
            except RlmError as exc:
                from rlm_cli.view.safe import inline

                print(f"rlm: error: {inline(exc)}", file=sys.stderr)
                code = exc.exit_code
            link = None
            if code in (128 + signal.SIGTERM, 128 + signal.SIGHUP):
                return code
    finally:
        history.save()
        if session_id is not None:
            with contextlib.suppress(OSError):
                print(f"rlm: conversation {session_id} kept: continue it with `rlm chat -c` or "
                      f"`rlm ask -c QUESTION` (or --resume {session_id})", file=sys.stderr)


def _read(prompt: str) -> str | None:
    """One line from the user (None at end of input); Ctrl-C at the prompt gives an empty line."""
    try:
        return input(prompt)
    except EOFError:
        with contextlib.suppress(OSError):
            print(file=sys.stderr)
        return None
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):
            print("^C", file=sys.stderr)
        return ""


class _History:
    """Line editing and a history of questions kept across chats, through ``readline`` when the
    platform has it (a private file, mode 0600, at most :data:`HISTORY_LINES` lines)."""

    def __init__(self) -> None:
        from rlm_cli.settings.paths import data_dir

        self.path: Path = data_dir() / "chat_history"
        try:
            import readline
        except ImportError:  # no line editing here (Windows without pyreadline): plain input()
            self.readline = None
            return
        self.readline = readline
        readline.set_history_length(HISTORY_LINES)
        with contextlib.suppress(OSError):
            readline.read_history_file(str(self.path))

    def save(self) -> None:
        """Write the history file, readable only by the user."""
        if self.readline is None:
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
            os.chmod(self.path, 0o600)
            self.readline.write_history_file(str(self.path))


def register(app: typer.Typer) -> None:
    """Add ``chat`` to the app."""
    from rlm_cli.commands.app import EXIT_CODES_HELP
    from rlm_cli.commands.options import SETTINGS_HELP, AskCommand

    app.command("chat", help=HELP, epilog=EXIT_CODES_HELP + "\n\n" + SETTINGS_HELP, cls=AskCommand)(chat_command)
