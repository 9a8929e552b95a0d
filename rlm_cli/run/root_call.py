"""One root LM call with its events: the one place a root reply is asked for, streamed to the view,
counted in the budget and cut to :data:`~rlm_cli.lm.replies.MAX_REPLY_CHARS` (the loop's iterations,
its last and rescue calls, and ``--mode direct``'s single call)."""

from __future__ import annotations

from rlm_cli.lm.replies import MAX_REPLY_CHARS, clip_reply
from rlm_cli.run.config import RunState
from rlm_cli.run.events import IterationStarted, RootDelta, RootReply


async def ask_root(state: RunState, rlm_id: str, index: int, depth: int, messages: list[dict], *,
                   role: str = "root", final_call: bool = False) -> str:
    """Ask the root model for iteration ``index`` of RLM ``rlm_id`` (at ``depth``) over ``messages``;
    returns the reply cut to :data:`MAX_REPLY_CHARS` characters. Emits IterationStarted, RootDelta
    pieces (when the view streams; never more of a reply than is kept) and RootReply; records the
    usage under ``role`` (``root``/``sub``: a recursive RLM's root counts as a sub-call's cost).
    Raises :class:`~rlm_cli.errors.BudgetExceeded` when the budget refuses the call, and the LM
    client's errors."""
    state.budget.check_call()
    state.bus.emit(IterationStarted(rlm_id, index, depth, final_call))
    on_delta = None
    if state.cfg.stream_root:
        shown = 0

        def on_delta(piece: str) -> None:
            nonlocal shown
            if shown < MAX_REPLY_CHARS:
                piece = piece[:MAX_REPLY_CHARS - shown]
                shown += len(piece)
                state.bus.emit(RootDelta(rlm_id, index, piece))
    result = await state.lm.complete(state.root_model, messages, role="root", on_delta=on_delta)
    state.budget.record(state.root_model, result.usage, role)
    text = clip_reply(result.text)
    state.bus.emit(RootReply(rlm_id, index, text, result.usage, result.duration_s, state.root_model))
    return text
