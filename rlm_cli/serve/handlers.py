"""The routes: ``GET /v1/models`` and ``POST /v1/chat/completions`` (plain and streamed).

Each chat request becomes one run through :func:`rlm_cli.run.service.run_question` (the code path of
``rlm ask``, minus signal handling), in its own task with its own sandboxed REPL, holding a running
slot of the server's :class:`~rlm_cli.serve.admission.Admission` and sharing the server-wide
semaphore of LM calls in flight. A handler cancelled (the client disconnected, or the server is
shutting down) cancels its run and waits for it: the REPL is killed and the trajectory written.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from rlm_cli.errors import RlmError
from rlm_cli.serve import replies
from rlm_cli.serve.errors import ApiError, error_body
from rlm_cli.serve.protocol import ChatRequest, lower_limits, parse_chat

KEEPALIVE_S = 5.0
"""Seconds between SSE comments while a streamed run works (they also reveal a gone client)."""


class NullView:
    """The server's view of a run: none (progress stays in the trajectory, never in the content)."""

    stream_root = False


@dataclasses.dataclass
class ServerState:
    """What the handlers share: the :class:`~rlm_cli.serve.config.ServeConfig` ``cfg``, the
    ``admission`` bounds, the ``lm_semaphore`` shared by all runs, the run ``tasks`` in flight and
    ``closing`` (set at shutdown: new requests get 503)."""

    cfg: Any
    admission: Any
    lm_semaphore: asyncio.Semaphore
    tasks: set = dataclasses.field(default_factory=set)
    closing: bool = False


STATE = web.AppKey("rlm_state", ServerState)


async def list_models(request: web.Request) -> web.Response:
    """``GET /v1/models``: ``rlm`` and ``rlm/<alias>`` for each configured alias."""
    return web.json_response(replies.model_list(list(request.app[STATE].cfg.model_names)))


async def read_json(request: web.Request) -> Any:
    """The request body parsed as JSON. Raises ApiError 413 beyond the body bound (aiohttp's
    ``client_max_size``), 400 when it is not UTF-8 JSON."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise ApiError(413, f"request body too large (limit {exc.max_size} bytes; rlm serve --max-body)",
                       "request_too_large") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "the request body is not valid JSON", "invalid_json") from None


def run_request(state: ServerState, chat: ChatRequest, conversation: Path | None) -> Any:
    """The :class:`~rlm_cli.run.service.RunRequest` for ``chat``: the server's sources plus the
    ``conversation`` file, the served model's root model, the server's limits lowered by the request."""
    from rlm_cli.run.service import RunRequest

    cfg = state.cfg
    settings = cfg.settings
    settings = dataclasses.replace(settings, model=cfg.model_names[chat.model],
                                   sub_model=settings.sub_model or settings.model)
    sources = list(cfg.sources) + ([str(conversation)] if conversation else [])
    return RunRequest(sources=sources, question=chat.question, load_options=cfg.load_options, settings=settings,
                      limits=lower_limits(cfg.limits, chat.budgets), system=cfg.system,
                      request_timeout=cfg.request_timeout, repl_network=cfg.repl_network)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/chat/completions``: validate, wait for a running slot, run, answer."""
    state = request.app[STATE]
    if request.content_length is not None and request.content_length > state.cfg.max_body:
        raise ApiError(413, f"request body too large (limit {state.cfg.max_body} bytes; rlm serve --max-body)",
                       "request_too_large")
    chat = parse_chat(await read_json(request), state.cfg.model_names)
    if state.closing:
        raise ApiError(503, "the server is shutting down", "shutting_down")
    async with state.admission.slot():
        tmp = Path(tempfile.mkdtemp(prefix="rlm-serve-"))
        try:
            conversation = None
            if chat.context or not state.cfg.sources:
                conversation = tmp / "conversation.txt"
                conversation.write_text(chat.context or "\n", encoding="utf-8")
            return await _run(request, state, chat, run_request(state, chat, conversation))
        finally:
            from rlm_cli.repl.sandbox import remove_tree

            remove_tree(tmp)


async def _run(request: web.Request, state: ServerState, chat: ChatRequest, req: Any) -> web.StreamResponse:
    from rlm_cli.run.service import run_question

    started = asyncio.Event()

    def on_started(outcome: Any) -> None:
        request["run_id"] = outcome.run_id
        started.set()

    task = asyncio.create_task(run_question(req, lambda bus: NullView(), lm_semaphore=state.lm_semaphore,
                                            started=on_started))
    state.tasks.add(task)
    try:
        if chat.stream:
            return await _stream(request, chat, task, started)
        return _plain(chat, await asyncio.shield(task))
    except asyncio.CancelledError:  # the client left or the server stops: end the run, wait for its trajectory
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise
    finally:
        state.tasks.discard(task)


def _failure(outcome: Any) -> ApiError | None:
    """The error to answer for a run that gave no usable answer, else None."""
    status = outcome.result.status
    if status == "error":
        message = (outcome.result.error or {}).get("message") or "the run failed"
        return ApiError(500, f"run {outcome.run_id} failed: {message}", "run_error")
    if status == "interrupted":
        return ApiError(503, f"run {outcome.run_id} was interrupted (the server is shutting down)", "interrupted")
    return None


def _plain(chat: ChatRequest, outcome: Any) -> web.Response:
    failure = _failure(outcome)
    if failure:
        raise failure
    return web.json_response(replies.completion(outcome, chat.model), headers={"X-RLM-Run-Id": outcome.run_id})


def _sse(doc: Any) -> bytes:
    return b"data: " + json.dumps(doc, ensure_ascii=False).encode("utf-8") + b"\n\n"


async def _stream(request: web.Request, chat: ChatRequest, task: asyncio.Task, started: asyncio.Event,
                  ) -> web.StreamResponse:
    waiter = asyncio.ensure_future(started.wait())
    try:
        await asyncio.wait({asyncio.shield(task), waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if not started.is_set():  # the load failed: a plain error response, before any header is sent
        task.result()
    run_id = request["run_id"]
    created = int(time.time())
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       "X-RLM-Run-Id": run_id})
    await resp.prepare(request)
    await resp.write(_sse(replies.chunk(run_id, chat.model, created, {"role": "assistant", "content": ""})))
    while not task.done():
        await asyncio.wait({asyncio.shield(task)}, timeout=KEEPALIVE_S)
        if not task.done():
            await resp.write(b": keep-alive\n\n")  # an SSE comment: never part of the content
    try:
        outcome = task.result()
        failure = _failure(outcome)
    except RlmError as exc:
        failure = ApiError(400, str(exc), "unusable_input")
    except Exception as exc:  # noqa: BLE001 - reported to the client in OpenAI's error shape
        failure = ApiError(500, f"internal error: {type(exc).__name__}", "internal_error")
    if failure:
        request["status"] = failure.status
        await resp.write(_sse(error_body(failure.status, failure.message, failure.code)))
    else:
        for piece in replies.pieces(outcome.result.answer or ""):
            await resp.write(_sse(replies.chunk(run_id, chat.model, created, {"content": piece})))
        finish = replies.FINISH.get(outcome.result.status, "stop")
        await resp.write(_sse(replies.chunk(run_id, chat.model, created, {}, finish)))
        if chat.include_usage:
            await resp.write(_sse(replies.chunk(run_id, chat.model, created, None,
                                                usage=replies.usage_of(outcome.usage))))
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp
