"""What one run is: its configuration (:class:`RunConfig`), the state its RLM instances share
(:class:`RunState`) and how it ended (:class:`RunResult`). The loop itself is
:mod:`rlm_cli.run.engine`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlm_cli.lm.client import LMClient
from rlm_cli.repl.process import ReplProcess
from rlm_cli.run.budget import Budget, Limits
from rlm_cli.run.events import EventBus

if TYPE_CHECKING:
    from rlm_cli.run.session import SessionLink


def now_iso() -> str:
    """The current UTC time, ISO 8601 with seconds precision."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class RunConfig:
    """What to run: the question, the root and sub models (litellm strings), the budgets.

    ``stream_root``: stream root replies (for the live view); ``system_extra``: user instructions
    appended to the system prompt; ``sub_chars``: the prompt size (characters) suggested for sub-calls
    (None: from litellm's model info, else :data:`rlm_cli.run.engine.DEFAULT_SUB_CHARS`); ``model_aliases``: names the
    root LM may pass as ``llm_query(prompt, model=NAME)``, mapped to litellm model strings;
    ``repl_network``: let REPL code reach the network (off by default where the sandbox can).
    """

    question: str
    root_model: str
    sub_model: str
    limits: Limits = field(default_factory=Limits)
    stream_root: bool = False
    system_extra: str | None = None
    sub_chars: int | None = None
    model_aliases: dict[str, str] = field(default_factory=dict)
    allowed_models: tuple[str, ...] = ()  # --allow-model: more models llm_query(model=...) may call
    repl_network: bool = False
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    session: SessionLink | None = None  # this run as a turn of a conversation (rlm_cli.run.session)
    mode: str = "rlm"  # --mode: auto | rlm | direct (rlm_cli.run.direct)
    window_tokens: int | None = None  # the root model's context window (tokens); None: the catalogue's
    make_repl: Any = None  # rlm serve: (loaded, workdir) -> a started ReplProcess for the root, or None


@dataclass
class RunResult:
    """How a run ended: ``status`` (trajectory status), ``answer`` (None when none), ``error``
    (``{"type", "message"}`` or None) and ``exhausted`` (the budget that ran out, if any)."""

    status: str
    answer: str | None
    error: dict | None = None
    exhausted: str | None = None


@dataclass
class RunState:
    """Everything the RLM instances of one run share."""

    cfg: RunConfig
    lm: LMClient
    budget: Budget
    bus: EventBus
    workdir: Path
    repls: set[ReplProcess] = field(default_factory=set)
    child_slots: dict[int, asyncio.Semaphore] = field(default_factory=dict)  # live child REPLs per depth
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    noticed: set[str] = field(default_factory=set)  # once-a-run notices already given

    @property
    def limits(self) -> Limits:
        return self.cfg.limits

    @property
    def root_model(self) -> str:
        return self.cfg.root_model

    @property
    def sub_model(self) -> str:
        return self.cfg.sub_model
