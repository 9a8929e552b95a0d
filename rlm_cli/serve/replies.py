"""Response bodies in OpenAI's shapes: ``chat.completion``, ``chat.completion.chunk`` and the model list."""

from __future__ import annotations

import time
from typing import Any

FINISH = {"answered": "stop", "budget_exhausted": "length", "max_iterations": "length"}
"""Run status -> ``finish_reason`` (a run stopped by a budget returns its best partial answer)."""


def usage_of(usage: dict | None) -> dict:
    """OpenAI ``usage`` (``prompt_tokens``, ``completion_tokens``, ``total_tokens``) summed over the
    root and sub-calls of a trajectory's ``usage`` (``{"root": U, "sub": U, ...}``), plus
    ``cost_usd`` (USD or None)."""
    usage = usage or {}
    prompt = sum(int((usage.get(k) or {}).get("input_tokens") or 0) for k in ("root", "sub"))
    completion = sum(int((usage.get(k) or {}).get("output_tokens") or 0) for k in ("root", "sub"))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "cost_usd": usage.get("total_cost_usd")}


def rlm_info(outcome: Any) -> dict:
    """The ``rlm`` extension of a response: ``run_id`` (``rlm show RUN_ID`` on the server finds the
    trajectory), ``status`` and ``exhausted``. No server path: a caller learns nothing of the
    server's filesystem."""
    return {"run_id": outcome.run_id, "status": outcome.result.status, "exhausted": outcome.result.exhausted}


def completion(outcome: Any, model: str, content: str, finish: str, usage: dict) -> dict:
    """A ``chat.completion`` object for a finished run (``id``: ``chatcmpl-<run id>``) answering
    ``content`` with ``finish`` (``stop`` or ``length``) and ``usage`` (:func:`usage_of`)."""
    return {"id": f"chatcmpl-{outcome.run_id}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish, "logprobs": None}],
            "usage": usage, "rlm": rlm_info(outcome)}


def chunk(run_id: str, model: str, created: int, delta: dict | None, finish: str | None = None,
          usage: dict | None = None) -> dict:
    """One ``chat.completion.chunk``: a ``delta`` (None: the usage-only chunk, with no choices)."""
    doc: dict = {"id": f"chatcmpl-{run_id}", "object": "chat.completion.chunk", "created": created,
                 "model": model, "choices": []}
    if delta is not None:
        doc["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
    if usage is not None:
        doc["usage"] = usage
    return doc


def pieces(text: str, size: int = 512) -> list[str]:
    """``text`` cut in pieces of at most ``size`` characters (one empty piece for "")."""
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def model_list(names: list[str]) -> dict:
    """The ``GET /v1/models`` body listing ``names``."""
    return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "rlm"}
                                       for n in names]}
