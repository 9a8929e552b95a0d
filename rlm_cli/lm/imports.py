"""One process-wide lock for the lazy imports of the LM client libraries (the OpenAI SDK, litellm,
httpx, httpx2), so that the background prewarm (:func:`rlm_cli.lm.client.prewarm`) and the main
thread never run these imports at the same time.

Why a lock of our own: Python's import system locks each module while it runs, but when two
threads import packages whose modules import each other (litellm, the OpenAI SDK, httpx and anyio
all have import cycles), its deadlock detection lets one thread go on with a module the other is
still running, and that thread fails with ``AttributeError: partially initialized module 'httpx'
has no attribute 'Response' (most likely due to a circular import)``: an ``openai/`` root beside a
litellm-routed sub-model failed so in 1 of 3 to 1 of 8 runs (issue 20). With every such import
made under :data:`IMPORT_LOCK`, a thread that needs a library while the prewarm imports it waits
for that import to finish and then gets the whole module.

A module already fully imported costs no lock (:func:`load`'s fast path), so calls made after the
prewarm never wait.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
from types import ModuleType

IMPORT_LOCK = threading.RLock()
"""Held while any of the LM client libraries is being imported (re-entrant: an import made under it
may call :func:`load` again)."""


def ready(name: str) -> ModuleType | None:
    """The module ``name`` if it is fully imported (in ``sys.modules`` and not still running its
    body in some thread), else None."""
    module = sys.modules.get(name)
    if module is None or getattr(getattr(module, "__spec__", None), "_initializing", False):
        return None
    return module


def load(name: str) -> ModuleType:
    """``import name`` under :data:`IMPORT_LOCK` (no lock when it is already fully imported).
    Raises what the import raises (``ImportError``...)."""
    module = ready(name)
    if module is not None:
        return module
    with IMPORT_LOCK:
        return importlib.import_module(name)


def load_all(names: tuple[str, ...]) -> None:
    """Import each of ``names`` under one hold of :data:`IMPORT_LOCK`; a module that cannot be
    imported is skipped (the call that needs it reports the error)."""
    if all(ready(n) is not None for n in names):
        return
    with IMPORT_LOCK:
        for name in names:
            with contextlib.suppress(Exception):
                importlib.import_module(name)
