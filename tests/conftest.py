"""Shared pytest fixtures.

No LLM provider is reachable in tests. End-to-end tests send LM calls over HTTP to a
:class:`ScriptedServer` (``tests/scripted_server.py``); tests of the run's rules answer them in
process with a :class:`FakeLM` (``tests/fake_lm.py``, run with ``tests/engine_runner.py``), scripted
the same way.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Must be set before litellm is imported anywhere: never fetch the model cost map from the network.
# litellm itself (~4 s of CPU to import) is imported only by the tests that use it, through
# rlm_cli.lm.backend_litellm.load_litellm (which also silences its banners).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import scripted_server` from any test

from fake_lm import FakeLM  # noqa: E402
from helpers import Cli  # noqa: E402
from scripted_server import Reply, ScriptedServer  # noqa: E402

__all__ = ["Cli", "FakeLM", "Reply", "ScriptedServer"]


@pytest.fixture(autouse=True)
def _no_user_convert_cache(monkeypatch):
    """In-process tests never read or fill the user's cache of converted documents (a cached
    conversion would hide the converter a test exercises); tests of the cache open their own. The
    installed command run by :class:`helpers.Cli` has its own ``RLM_HOME`` and its cache there."""
    monkeypatch.setenv("RLM_CONVERT_CACHE_MAX", "0")


@pytest.fixture
def scripted_server():
    """A started :class:`ScriptedServer` on 127.0.0.1 (free port), stopped after the test."""
    with ScriptedServer() as server:
        yield server


@pytest.fixture
def cli(tmp_path, request) -> Cli:
    """The shared runner of the installed ``rlm`` command (:class:`helpers.Cli`), its home at
    ``tmp_path / "home"``, pointed at the test's ``scripted_server`` when the test uses that fixture."""
    server = request.getfixturevalue("scripted_server") if "scripted_server" in request.fixturenames else None
    return Cli(tmp_path / "home", server)


@pytest.fixture
def fake_lm() -> FakeLM:
    """A fresh in-process :class:`FakeLM` (script it like ``scripted_server``; run the engine against
    it with :func:`engine_runner.run_engine`)."""
    return FakeLM()


@pytest.fixture
def scripted_env(scripted_server, monkeypatch):
    """The ``scripted_server``, with the environment pointing rlm at it.

    Sets ``RLM_API_BASE`` to its base URL, ``RLM_MODEL=openai/root``, ``RLM_SUB_MODEL=openai/sub``
    (so the server sees models ``"root"`` and ``"sub"``) and a dummy ``OPENAI_API_KEY``.
    """
    monkeypatch.setenv("RLM_API_BASE", scripted_server.base_url)
    monkeypatch.setenv("RLM_MODEL", "openai/root")
    monkeypatch.setenv("RLM_SUB_MODEL", "openai/sub")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    return scripted_server


E2E = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(config, items):
    """Mark every test under ``tests/e2e/`` ``e2e`` (the installed ``rlm`` command, HTTP, real
    signals), so ``-m "not e2e"`` or ``tests/unit`` runs the fast in-process tests alone."""
    for item in items:
        if E2E in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def serve(cli, scripted_server, tmp_path):
    """Start ``rlm serve ARGS`` (``serve(*args, **env) -> serve_support.Server``) against the scripted LM
    server, answering root calls with ``serve_support.root_reply``; every server started is stopped
    afterwards."""
    from serve_support import Server, root_reply

    scripted_server.default("root", root_reply)
    servers: list = []

    def start(*args: str, **env: str):
        servers.append(Server(cli, tmp_path, *args, **env))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()
