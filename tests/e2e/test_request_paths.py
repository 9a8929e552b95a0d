"""The two request paths through the installed CLI: an OpenAI-compatible server never imports litellm,
``RLM_LM_BACKEND=litellm`` runs end to end, an unknown backend is a usage error. The paths themselves
(texts, usage, retries, errors) are tested at the LM client in tests/unit/test_lm_paths.py."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import last_trajectory
from scripted_server import Reply


def test_a_run_on_an_openai_compatible_server_never_imports_litellm(cli, scripted_server, tmp_path):
    """Nor the SDK's typed chat resource (~0.45 s and 14 MB): requests go through its request method."""
    src = tmp_path / "a.txt"
    src.write_text("data\n")
    scripted_server.default("sub", "fine")
    scripted_server.script("root", "```repl\nprint(llm_query('x'))\n```", "FINAL(ok)")
    code = ("import atexit, sys\n"
            "heavy = ('litellm', 'openai.resources.chat.completions')\n"
            "atexit.register(lambda: print([m for m in heavy if m in sys.modules] or 'LEAN', file=sys.stderr))\n"
            "from rlm_cli.cli import main\n"
            f"sys.argv = ['rlm', 'ask', {str(src)!r}, 'q?', '--no-log']\n"
            "main()\n")
    p = subprocess.run([sys.executable, "-c", code], env=cli.env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout == "ok\n", p.stderr
    assert p.stderr.rstrip().endswith("LEAN"), p.stderr


def test_the_litellm_path_runs_end_to_end(cli, scripted_server, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("data\n")
    scripted_server.default("gpt-4o-mini", Reply(text="fine", prompt_tokens=1000, completion_tokens=10))
    scripted_server.script("root", "```repl\nprint(llm_query('x'))\n```", "FINAL(ok)")
    home = tmp_path / "home"
    p = cli("ask", str(src), "q?", "--sub-model", "openai/gpt-4o-mini", RLM_LM_BACKEND="litellm")
    assert (p.returncode, p.stdout) == (0, "ok\n"), p.stderr
    sub = last_trajectory(home)["usage"]["sub"]
    assert sub["calls"] == 1 and sub["cost_usd"] == pytest.approx(1000 * 0.15e-6 + 10 * 0.6e-6)


def test_an_unknown_backend_is_a_usage_error(cli, scripted_server, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("data\n")
    p = cli("ask", str(src), "q?", RLM_LM_BACKEND="fast")
    assert p.returncode == 2 and "RLM_LM_BACKEND" in p.stderr and "Traceback" not in p.stderr
