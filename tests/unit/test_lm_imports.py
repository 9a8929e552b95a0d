"""Imports of the LM client libraries are race-free (issue 20, point 2): two threads importing
modules that import each other can hand one of them a partially initialised module; every lazy
import of openai/litellm/httpx goes through one lock (:mod:`rlm_cli.lm.imports`)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from rlm_cli.lm import backend_litellm, backend_openai, imports

CYCLE = {  # a imports b and b uses a: safe in one thread (b skips a.VALUE while its own thread runs a),
    # as the import cycles in litellm, httpx and anyio are
    "cyc/__init__.py": "",
    "cyc/a.py": "import threading, time\nOWNER = threading.get_ident()\ntime.sleep(0.4)\nfrom cyc import b\n"
                "VALUE = 1\n",
    "cyc/b.py": "import threading, time\ntime.sleep(0.8)\nfrom cyc import a\n"
                "USED = None if a.OWNER == threading.get_ident() else a.VALUE\n",
}

RACE = textwrap.dedent("""
    import importlib, sys, threading, time
    sys.path.insert(0, sys.argv[1])
    from rlm_cli.lm import imports
    load = imports.load if sys.argv[2] == "locked" else importlib.import_module
    errors = []
    def run(name):
        try:
            load(name)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    t = threading.Thread(target=run, args=("cyc.a",))  # the prewarm thread
    t.start()
    time.sleep(0.1)
    run("cyc.b")  # the main thread, while the prewarm imports
    t.join(10)
    print(errors)
""")


@pytest.mark.parametrize("mode", ["plain", "locked"])
def test_concurrent_imports_of_a_cycle(tmp_path, mode):
    """Reproduces the failure reliably with plain imports (Python's deadlock detection hands the
    main thread a half-run module), and shows the lock prevents it."""
    for rel, text in CYCLE.items():
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_text(text)
    out = subprocess.run([sys.executable, "-c", RACE, str(tmp_path), mode], capture_output=True, text=True,
                         timeout=60).stdout
    if mode == "plain":
        assert "partially initialized module" in out
    else:
        assert out.strip() == "[]"


def _blocks_while_held(call) -> bool:
    """Whether ``call`` (made in a thread) waits while another thread holds IMPORT_LOCK."""
    done = threading.Event()
    with imports.IMPORT_LOCK:
        worker = threading.Thread(target=lambda: (call(), done.set()), daemon=True)
        worker.start()
        waited = not done.wait(0.5)
    worker.join(30)
    return waited and done.is_set()


def test_load_waits_for_an_import_in_progress(monkeypatch):
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    assert _blocks_while_held(lambda: imports.load("colorsys"))


def test_load_of_a_ready_module_does_not_wait():
    done = threading.Event()
    with imports.IMPORT_LOCK:
        threading.Thread(target=lambda: (imports.load("json"), done.set()), daemon=True).start()
        assert done.wait(5)


def test_litellm_is_loaded_under_the_lock(monkeypatch):
    monkeypatch.setattr(backend_litellm, "_litellm", None)
    assert _blocks_while_held(backend_litellm.load_litellm)


def test_the_openai_path_warms_up_under_the_lock(monkeypatch):
    monkeypatch.setattr(backend_openai, "_warm", threading.Event())
    assert _blocks_while_held(lambda: backend_openai.OpenAIBackend()._client("http://127.0.0.1:9/v1", "sk-x"))


PEEK = textwrap.dedent("""
    import json, sys
    from rlm_cli.lm import backend_openai, client, imports
    seen = []
    real_set = backend_openai._warm.set
    def recording_set():  # the moment requests may start: what is fully imported then
        seen.append({name: imports.ready(name) is not None for name in backend_openai.PEEKED_MODULES})
        real_set()
    backend_openai._warm.set = recording_set
    models = sys.argv[1].split(",")
    client.prewarm(models).join(120)
    print(json.dumps({"at_warm": seen, "httpx_now": "httpx" in sys.modules}))
""")


@pytest.mark.parametrize("models, litellm_too", [("openai/root,hosted_vllm/worker", True),
                                                  ("openai/root,openai/sub", False)])
def test_the_modules_the_sdk_peeks_at_are_whole_before_a_request_when_litellm_comes_too(models, litellm_too):
    """openai 3.57 reads sys.modules["httpx"].Timeout while it builds each request; litellm imports
    httpx. Seen 1 run in 13 under load: an `openai/` root beside a `hosted_vllm/` sub-model failed its
    first call with `partially initialized module 'httpx' has no attribute 'Timeout'`, the prewarm
    thread being in the middle of importing litellm. With litellm to come, httpx is imported with the
    SDK, before any request may start; without it, httpx is not imported at all (its memory)."""
    import json

    out = subprocess.run([sys.executable, "-c", PEEK, models], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["at_warm"] == [{"httpx": litellm_too}]
    assert result["httpx_now"] == litellm_too
