"""Helpers for the tests: run the installed ``rlm`` command (:class:`Cli`, the ``cli`` fixture), read its
trajectory, poll instead of sleeping."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

RLM = str(Path(sys.executable).parent / "rlm")
TESTS = Path(__file__).resolve().parent
"""The tests/ folder (shared fixtures, helpers and the scripted server live here)."""
ROOT = TESTS.parent
"""The project's root folder."""


# Variables of the test process's environment that would change what rlm prints: colour forcing, CI
# markers, Tab completion requests, and every RLM_* setting.
_NOT_INHERITED = ("NO_COLOR", "FORCE_COLOR", "PY_COLORS", "GITHUB_ACTIONS", "_TYPER_FORCE_DISABLE_TERMINAL")


FAKE_API_KEY = "sk-test-key-not-real"
"""The placeholder API key of the tests (never a real one; the scripted servers accept any key)."""

def rlm_env(server, home: Path, **extra: str | None) -> dict[str, str]:
    """An environment for ``rlm`` with its home (config, logs) at ``home``: the test process's
    environment without ``RLM_*``, colour-forcing and CI variables, plus ``RLM_HOME``, ``NO_COLOR=1``,
    an offline litellm cost map, models ``openai/root`` and ``openai/sub`` and a fake
    ``OPENAI_API_KEY``; ``RLM_API_BASE`` when ``server`` (a :class:`~scripted_server.ScriptedServer`) is
    given; then ``extra`` (a value of None removes that variable)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RLM_", "_RLM_COMPLETE")) and k not in _NOT_INHERITED}
    env.update({"RLM_HOME": str(home), "RLM_MODEL": "openai/root", "RLM_SUB_MODEL": "openai/sub",
                "OPENAI_API_KEY": FAKE_API_KEY, "NO_COLOR": "1",
                "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    if server is not None:
        env["RLM_API_BASE"] = server.base_url
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_rlm(args: list[str], env: dict[str, str], input: str | bytes | None = None, cwd: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``rlm ARGS`` to completion with ``env``; stdout and stderr are text (bytes ``input`` is
    sent as it is, the output decoded as UTF-8 with replacement)."""
    raw = isinstance(input, bytes)
    proc = subprocess.run([RLM, *args], env=env, input=input, capture_output=True, text=not raw, cwd=cwd,
                          timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
    if raw:
        proc.stdout = proc.stdout.decode("utf-8", "replace")
        proc.stderr = proc.stderr.decode("utf-8", "replace")
    return proc


class Cli:
    """The installed ``rlm`` command, as a user runs it: the runner behind the ``cli`` fixture.

    ``home`` is its ``RLM_HOME`` (config file, trajectories); ``server`` a scripted server it is
    pointed at (``RLM_API_BASE``), or None; ``env`` extra variables for every call (``COLUMNS=200``
    unless given). The environment is :func:`rlm_env`'s. ``cli("ask", src, "q?", input=..., cwd=..., timeout=..., NAME=value)`` runs
    one command to completion (a variable set to None is removed for that call) and returns the
    ``subprocess.CompletedProcess`` with text stdout and stderr; :meth:`popen` starts one and
    returns the ``Popen``; :meth:`trajectory` reads the newest trajectory under ``home``.
    """

    def __init__(self, home: Path, server=None, **env: str | None) -> None:
        self.home = Path(home)
        self.server = server
        self.extra = {"COLUMNS": "200", **env}  # a wide terminal: tables and help text on one line each

    def env(self, **extra: str | None) -> dict[str, str]:
        """The environment of one call: :func:`rlm_env` with this runner's and then ``extra`` variables."""
        return rlm_env(self.server, self.home, **{**self.extra, **extra})

    def __call__(self, *args: str, input: str | bytes | None = None, cwd: Path | None = None,
                 timeout: float = 120, **extra: str | None) -> subprocess.CompletedProcess:
        return run_rlm([str(a) for a in args], self.env(**extra), input=input, cwd=cwd, timeout=timeout)

    def popen(self, *args: str, **extra: str | None) -> subprocess.Popen:
        """Start ``rlm ARGS`` (stdin from /dev/null, text stdout and stderr piped); the caller waits."""
        return subprocess.Popen([RLM, *(str(a) for a in args)], env=self.env(**extra), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)

    def trajectory(self) -> dict:
        """The newest trajectory under ``home``, parsed (fails the test when there is none)."""
        return last_trajectory(self.home)

    def trajectories(self) -> list[Path]:
        """Trajectory files under ``home``, oldest first."""
        return trajectories(self.home)


def trajectories(home: Path) -> list[Path]:
    """Trajectory files written under ``home``, oldest first (by modification time: names start with a
    stamp of whole seconds, so two runs in one second would otherwise sort by their random ids)."""
    files = [p for p in (home / "logs").glob("*.json") if not p.is_symlink()]  # links: earlier turns
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))


def last_trajectory(home: Path) -> dict:
    """The newest trajectory under ``home``, parsed."""
    files = trajectories(home)
    assert files, f"no trajectory under {home}"
    return json.loads(files[-1].read_text(encoding="utf-8"))


REQUIRED_FIELDS = ("schema", "id", "started_at", "ended_at", "status", "question", "answer", "models",
                   "context", "limits", "usage", "iterations", "error")


def assert_trajectory_shape(doc: dict) -> None:
    """Every field the contract requires is present, with the right types."""
    for key in REQUIRED_FIELDS:
        assert key in doc, key
    assert doc["schema"] == "rlm-trajectory/1"
    assert set(doc["models"]) >= {"root", "sub"}
    assert set(doc["context"]) >= {"total_chars", "est_tokens", "files"}
    for f in doc["context"]["files"]:
        assert set(f) >= {"path", "chars", "lines"}
    for role in ("root", "sub"):
        assert set(doc["usage"][role]) >= {"calls", "input_tokens", "output_tokens", "cost_usd"}
    assert "total_cost_usd" in doc["usage"]
    for it in doc["iterations"]:
        assert set(it) >= {"index", "depth", "response", "duration_s", "steps"}
        for step in it["steps"]:
            assert set(step) >= {"code", "stdout", "stderr", "duration_s", "sub_calls"}
            for call in step["sub_calls"]:
                assert set(call) >= {"kind", "model", "prompt", "response", "input_tokens", "output_tokens",
                                     "cost_usd", "duration_s", "error"}


def source_file(tmp_path: Path, text: str = "some data\n") -> str:
    """A small input file ``input.txt`` under ``tmp_path`` holding ``text``; returns its path."""
    p = tmp_path / "input.txt"
    p.write_text(text)
    return str(p)


def step_stdout(doc: dict, iteration: int = 0) -> str:
    """The first step's stdout of root iteration ``iteration`` in a trajectory."""
    return doc["iterations"][iteration]["steps"][0]["stdout"]


def echo_reply(body: dict) -> str:
    """A scripted reply that echoes the request's last message (for ``Reply`` callables)."""
    return "echo " + body["messages"][-1]["content"]


def repl_pids(scope: Path) -> list[int]:
    """PIDs of live REPL children of runs whose TMPDIR was ``scope`` (other runs on the machine are
    not ours to judge), and the processes below them: a shell init starts the REPL again as
    ``child.py --locked`` without the run's paths on its command line."""
    pids, parents = [], {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if b"rlm_cli/repl/child.py" in cmd and str(scope).encode() in cmd:
                pids.append(int(d.name))
    below = [pid for pid in parents if pid not in pids and _under(pid, set(pids), parents)]
    return pids + below


def _under(pid: int, roots: set[int], parents: dict[int, int]) -> bool:
    """Whether ``pid`` descends from one of ``roots`` (``parents``: pid -> parent pid)."""
    seen = set()
    while pid in parents and pid not in seen:
        seen.add(pid)
        pid = parents[pid]
        if pid in roots:
            return True
    return False


def wait_until(predicate, timeout_s: float = 30.0, interval_s: float = 0.02) -> bool:
    """Poll ``predicate()`` every ``interval_s`` seconds until it is true (returns True) or
    ``timeout_s`` seconds have passed (returns its last value). For waiting on another process or
    thread instead of sleeping a fixed time: a loaded machine only makes it slower, never wrong."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


def drain_pty(master: int) -> bytes:
    """Everything written to the pseudo-terminal whose controller is ``master`` until the program on it
    exits (its side closes: EOF or EIO)."""
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def context_over(tmp_path: Path, files: dict[str, str]):
    """``(context, spans, loaded)`` for ``files`` (path -> text) laid out exactly as the REPL child
    gets them: the context text, ``path -> (start, end)`` character spans, the LoadedContext."""
    from rlm_cli.context import ContextWriter

    writer = ContextWriter(tmp_path / "ctx.txt")
    for path, text in files.items():
        writer.add(path, text)
    loaded = writer.finish()
    context = loaded.read()
    return context, {path: (offset, offset + chars) for path, offset, chars in loaded.index()}, loaded



async def no_subcalls(op, args):
    """A REPL sub-call handler for tests that make none: every request gets ``"ok"``."""
    return "ok"


def tiny_context(tmp_path):
    """``(context file, index)`` for a one-file context (``a.txt`` holding ``hello``), as
    :class:`~rlm_cli.repl.process.ReplProcess` takes them."""
    ctx = tmp_path / "ctx.txt"
    ctx.write_text("==> a.txt <==\nhello\n")
    return ctx, [["a.txt", 14, 6]]
