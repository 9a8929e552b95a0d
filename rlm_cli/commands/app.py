"""The ``rlm`` command line: wires the commands of ``rlm_cli/commands/`` into one Typer app.

Nothing here (or in any command module at import time) may import litellm: ``rlm --help`` and shell
completion run this module on every call. Exit codes are the contract's (``rlm_cli.errors``).
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

if os.environ.get("NO_COLOR") and not os.environ.get("FORCE_COLOR"):
    # Typer forces terminal output under CI variables (GITHUB_ACTIONS...): honour NO_COLOR fully.
    os.environ.setdefault("_TYPER_FORCE_DISABLE_TERMINAL", "1")

import typer  # noqa: E402

from rlm_cli import __version__  # noqa: E402
from rlm_cli.errors import EXIT_ERROR, EXIT_INTERRUPTED, RlmError  # noqa: E402

EXIT_CODES_HELP = (
    "Exit codes: 0 answered; 1 runtime or provider error; 2 usage error or unusable input; "
    "3 a budget or the iteration limit ran out before an answer; 130 interrupted (129 SIGHUP, 143 SIGTERM)."
)

app = typer.Typer(
    name="rlm",
    help="Ask questions of inputs far larger than any model's context window, with Recursive Language "
    "Models (arXiv 2512.24601).\n\n" + EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: Rich help formatting costs ~90 ms on every `rlm --help` and Tab
    no_args_is_help=True,
    add_completion=False,  # one mechanism: the completions/ scripts (README "Shell completion")
)


# The completions/ scripts call `rlm` back on Tab (_RLM_COMPLETE=complete_<shell>); without Typer's
# --install-completion, its shell classes must be registered here.
from typer._completion_classes import completion_init  # noqa: E402

completion_init()


def _version(value: bool) -> None:
    if value:
        print(f"rlm {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors (also RLM_DEBUG=1)."),
) -> None:
    if debug:
        os.environ["RLM_DEBUG"] = "1"


def _register() -> None:
    from rlm_cli.commands import ask, ls
    from rlm_cli.commands.options import SETTINGS_HELP, AskCommand

    app.command("ask", help=ask.HELP, epilog=EXIT_CODES_HELP + "\n\n" + SETTINGS_HELP, cls=AskCommand)(ask.ask_command)
    app.command("ls", help=ls.HELP)(ls.ls_command)
    for name in ("chat", "show", "logs", "config", "models", "serve", "mcp", "bench"):
        try:
            module = __import__(f"rlm_cli.commands.{name}", fromlist=["register"])
        except ImportError:
            continue
        module.register(app)


_register()


def debug_enabled() -> bool:
    """True when tracebacks were asked for (``--debug`` anywhere on the command line, or RLM_DEBUG=1)."""
    return os.environ.get("RLM_DEBUG", "") not in ("", "0") or "--debug" in sys.argv[1:]


def _visible(text: object) -> str:
    """An error message (it may carry file names or provider text) with control characters made visible
    and known secret values redacted."""
    from rlm_cli.secrets import redact
    from rlm_cli.view.safe import inline

    return redact(inline(text))


def exit_now(code: int) -> NoReturn:
    """End the process with exit status ``code`` once stdout and stderr are flushed and the atexit
    handlers have run, without the interpreter's teardown of every imported module: after ``rlm ask``
    that teardown (the OpenAI SDK, the price map: ~100,000 objects) took 0.5-0.7 s once the answer was
    printed, after ``rlm --help`` tens of ms (bench/bench_overhead.py). Nothing rlm needs happens in
    it: files are written and closed, REPLs and temporary directories removed, before this point, and
    ``weakref.finalize`` cleanups (``tempfile``) are atexit handlers. A flush that fails (a closed pipe)
    takes the normal exit instead, which reports it as before."""
    import atexit

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)
    atexit._run_exitfuncs()
    os._exit(code)


def main() -> None:
    """Console-script entry point: runs the app and maps every ending to a contract exit code."""
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        code = EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("rlm: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except typer.TyperException as exc:  # Typer's (bundled click) usage errors: exit 2
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            print(f"rlm: error: {exc.format_message()}", file=sys.stderr)
        code = exc.exit_code
    except RlmError as exc:
        if debug_enabled():
            import traceback

            traceback.print_exc()
        print(f"rlm: error: {_visible(exc)}", file=sys.stderr)
        code = exc.exit_code
    except Exception as exc:  # one line, never a traceback, unless --debug
        if debug_enabled():
            import traceback

            traceback.print_exc()
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"rlm: error: {type(exc).__name__}: {_visible(msg)}".rstrip(": "), file=sys.stderr)
        code = EXIT_ERROR
    exit_now(code if isinstance(code, int) else 0)
