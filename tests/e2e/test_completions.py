"""Shell completions: the committed scripts match the CLI, Tab works, and neither Tab nor ``--help``
imports litellm (a 4 s import that would run on every Tab)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RLM = Path(sys.executable).parent / "rlm"
sys.path.insert(0, str(ROOT / "scripts"))

import gen_completions  # noqa: E402

STUB = ('import os\nopen(os.environ["LITELLM_MARKER"], "w").write("imported")\n'
        'raise ImportError("litellm must not be imported here")\n')


@pytest.fixture
def guarded_env(tmp_path):
    """Environment whose PYTHONPATH shadows litellm with a stub that leaves a marker file when imported."""
    stub_dir = tmp_path / "stub"
    (stub_dir / "litellm").mkdir(parents=True)
    (stub_dir / "litellm" / "__init__.py").write_text(STUB)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RLM_", "_RLM_COMPLETE"))}
    env.update(RLM_HOME=str(tmp_path / "home"), LITELLM_MARKER=str(tmp_path / "marker"), NO_COLOR="1",
               PYTHONPATH=str(stub_dir))
    return env


def _marker(env: dict) -> bool:
    return Path(env["LITELLM_MARKER"]).exists()


def test_stub_really_shadows_litellm(guarded_env):
    proc = subprocess.run([sys.executable, "-c", "import litellm"], env=guarded_env, capture_output=True)
    assert proc.returncode != 0 and _marker(guarded_env)


def test_committed_completions_are_up_to_date():
    stale = gen_completions.stale(rlm=RLM)
    assert not stale, f"stale completion scripts {stale}: run .venv/bin/python scripts/gen_completions.py"


@pytest.mark.parametrize("shell, needle", [("bash", "complete -o default -F _rlm_completion rlm"),
                                           ("zsh", "compdef _rlm_completion rlm"),
                                           ("fish", "complete --command rlm")])
def test_scripts_are_for_rlm(shell, needle):
    assert needle in (ROOT / "completions" / gen_completions.SHELLS[shell]).read_text()


def _complete_bash(words: str, env: dict) -> subprocess.CompletedProcess:
    parts = words.split(" ")
    cenv = dict(env, _RLM_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(len(parts) - 1))
    return subprocess.run([str(RLM)], env=cenv, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("words, expected", [
    ("rlm a", {"ask"}),
    ("rlm con", {"config"}),
    ("rlm config s", {"set", "show"}),
    ("rlm ask --max-c", {"--max-cost"}),
    ("rlm ask --sub", {"--sub-model"}),
])
def test_tab_completion_without_litellm(guarded_env, words, expected):
    proc = _complete_bash(words, guarded_env)
    assert proc.returncode == 0, proc.stderr
    got = set(proc.stdout.split())
    assert expected <= got, (words, got)
    assert not _marker(guarded_env), "Tab completion imported litellm"


@pytest.mark.parametrize("args", [["--help"], ["ask", "--help"], ["config", "--help"], ["models", "--help"],
                                  ["--version"], ["config", "path"]])
def test_help_and_cheap_commands_never_import_litellm(guarded_env, args):
    proc = subprocess.run([str(RLM), *args], env=guarded_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert not _marker(guarded_env), f"rlm {' '.join(args)} imported litellm"


def test_models_command_reads_the_catalogue_without_litellm(guarded_env):
    import importlib.util

    catalogue = "model_prices_and_context_window_backup.json"
    real = Path(importlib.util.find_spec("litellm").submodule_search_locations[0]) / catalogue
    stub = Path(guarded_env["PYTHONPATH"]) / "litellm" / catalogue
    stub.symlink_to(real)  # the stub shadows the real package, so give it litellm's data file
    env = dict(guarded_env, OPENAI_API_KEY="sk-test")
    proc = subprocess.run([str(RLM), "models"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "openai/gpt-5-mini" in proc.stdout
    assert not _marker(env)


def test_importtime_of_help_has_no_litellm(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLM_")}
    env["RLM_HOME"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c",
                           "import sys; sys.argv = ['rlm', '--help']; from rlm_cli.cli import main; main()"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-500:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "rlm_cli.cli" in imported
    assert not {m for m in imported if m == "litellm" or m.startswith("litellm.")}
