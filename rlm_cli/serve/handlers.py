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
from rlm_cli.serve import answer, replies
from rlm_cli.serve.errors import ApiError, error_body
from rlm_cli.serve.protocol import ChatRequest, lower_limits, parse_chat

KEEPALIVE_S = 5.0
"""Seconds between SSE comments while a streamed run works (they also reveal a gone client)."""


@dataclasses.dataclass
class ServerState:
    """What the handlers share: the :class:`~rlm_cli.serve.config.ServeConfig` ``cfg``, the
    ``admission`` bounds, the ``lm_semaphore`` shared by all runs, the server-wide ``spending``
    (:class:`~rlm_cli.serve.spending.Spending`), the ``listener`` (None when the app is served by
    other means), the run ``tasks`` in flight, ``closing`` (set at shutdown: new requests get 503) and
    the ``sources`` cache (:class:`~rlm_cli.serve.cache.SourceCache`; None: each run loads them) and
    the ``warm`` REPLs over them (:class:`~rlm_cli.serve.warm.WarmPool`)."""

    cfg: Any
    admission: Any
    lm_semaphore: asyncio.Semaphore
    spending: Any = None
    listener: Any = None
    tasks: set = dataclasses.field(default_factory=set)
    closing: bool = False
    sources: Any = None
    warm: Any = None  # a rlm_cli.serve.warm.WarmPool (None: every run starts its own REPL)
    lm_paths: Any = None  # a rlm_cli.serve.lmpaths.SharedPaths (None: each run opens its own connections)


STATE = web.AppKey("rlm_state", ServerState)


async def list_models(request: web.Request) -> web.Response:
    """``GET /v1/models``: ``rlm`` and ``rlm/<alias>`` for each configured alias."""
    return web.json_response(replies.model_list(list(request.app[STATE].cfg.model_names)))


async def read_json(request: web.Request) -> Any:
    """The request body parsed as JSON, read within the server's body timeout. Raises ApiError 413
    beyond the body bound (aiohttp's ``client_max_size``), 408 when the body is too slow, 400 when
    it is not UTF-8 JSON or nests too deep for the parser."""
    timeout = request.app[STATE].cfg.body_timeout
    try:
        async with asyncio.timeout(timeout):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise ApiError(413, f"request body too large (limit {exc.max_size} bytes; rlm serve --max-body)",
                       "request_too_large") from None
    except TimeoutError:
        request.protocol.force_close()  # whatever is still dripping in is not read
        raise ApiError(408, f"the request body did not arrive within {timeout:g} s", "request_timeout") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(400, "the request body is not valid JSON (or nests too deep)", "invalid_json") from None


def run_request(state: ServerState, chat: ChatRequest, conversation: Path | None, max_cost: float | None,
                ) -> Any:
    """The :class:`~rlm_cli.run.service.RunRequest` for ``chat``: the server's sources (from its
    cache when it has one) plus the ``conversation`` file, the served model's root model, the server's limits lowered by the request
    and ``max_cost`` (USD, the run's spending reservation), the answer's shape in the instructions; its
    trajectory written off the event loop (``log_writer``, whose ``drained()`` the handler awaits)."""
    from rlm_cli.run.service import RunRequest
    from rlm_cli.trajectory.background import TrajectoryWriter

    cfg = state.cfg
    settings = cfg.settings
    settings = dataclasses.replace(settings, model=cfg.model_names[chat.model],
                                   sub_model=settings.sub_model or settings.model)
    sources = list(cfg.sources) + ([str(conversation)] if conversation else [])
    limits = dataclasses.replace(lower_limits(cfg.limits, chat.budgets), max_cost=max_cost)
    system = "\n\n".join(s for s in (cfg.system, answer.instructions(chat.response_format, chat.max_tokens)) if s)
    build = make_repl = None
    if state.sources is not None and cfg.sources:  # the SOURCEs loaded once, this request's messages added
        used: list = []

        def build(dest: Path) -> Any:
            return state.sources.build(dest, conversation, used)

        if state.warm is not None and conversation is None:  # the context is the SOURCEs alone
            def make_repl(loaded: Any, workdir: Path) -> Any:
                return state.warm.take(used[0]) if used else None
    return RunRequest(sources=sources, question=chat.question, load_options=cfg.load_options, settings=settings,
                      limits=limits, system=system or None, request_timeout=cfg.request_timeout,
                      repl_network=cfg.repl_network, build_context=build, log_writer=TrajectoryWriter(),
                      make_repl=make_repl, lm_paths=state.lm_paths)


def check_cost_budget(state: ServerState, chat: ChatRequest) -> None:
    """A request's ``rlm.max_cost`` needs priced models, as ``rlm ask --max-cost`` does (else the
    budget could not be enforced). Raises ApiError 400 naming ``rlm.max_cost``."""
    if "max_cost" not in chat.budgets:
        return
    from rlm_cli.serve.config import unpriced

    settings = state.cfg.settings
    for role, model in (("root", state.cfg.model_names[chat.model]), ("sub", settings.sub_model or settings.model)):
        if unpriced(settings, model):
            raise ApiError(400, f"rlm.max_cost needs a price for the {role} model, which this server does not "
                           "have (its owner can add one: rlm serve --price MODEL=IN/OUT)", "unpriced_model",
                           "rlm.max_cost")


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/chat/completions``: validate, reserve spending, wait for a running slot, run, answer."""
    state = request.app[STATE]
    if request.content_length is not None and request.content_length > state.cfg.max_body:
        raise ApiError(413, f"request body too large (limit {state.cfg.max_body} bytes; rlm serve --max-body)",
                       "request_too_large")
    chat = parse_chat(await read_json(request), state.cfg.model_names)
    check_cost_budget(state, chat)
    if state.closing:
        raise ApiError(503, "the server is shutting down", "shutting_down")
    budget = lower_limits(state.cfg.limits, chat.budgets).max_cost
    async with state.admission.slot():
        reserved = state.spending.reserve(budget)
        spent: list[float | None] = [None]
        tmp = None
        try:
            conversation = None
            if chat.context or not state.cfg.sources:  # the other messages: a file of the context
                tmp = Path(tempfile.mkdtemp(prefix="rlm-serve-"))
                conversation = tmp / "conversation.txt"
                conversation.write_text(chat.context or "\n", encoding="utf-8")
            return await _run(request, state, chat, run_request(state, chat, conversation, reserved), spent)
        finally:
            state.spending.settle(reserved, spent[0])
            if tmp is not None:
                from rlm_cli.repl.sandbox import remove_tree

                await _off_loop(remove_tree, tmp)


async def _off_loop(fn: Any, *args: Any) -> None:
    """``fn(*args)`` (file clean-up) in a worker thread, so the other runs' event loop does not wait;
    completed even when the awaiting handler is cancelled."""
    task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:  # the thread finishes its work anyway
        task.add_done_callback(lambda fut: fut.cancelled() or fut.exception())
        raise


class ProgressView:
    """The server's view of a run: counts root iterations and sub-calls for the SSE progress comments
    (the content itself is never streamed before the run ends)."""

    stream_root = False

    def __init__(self) -> None:
        self.iteration = 0
        self.sub_calls = 0

    def __call__(self, event: Any) -> None:
        from rlm_cli.run.events import IterationStarted, SubCallStarted

        if isinstance(event, IterationStarted) and event.depth == 0:
            self.iteration = event.index + 1
        elif isinstance(event, SubCallStarted):
            self.sub_calls += 1

    def comment(self) -> bytes:
        """``: rlm iteration 2, 3 sub-calls``: an SSE comment (never part of the content)."""
        return f": rlm iteration {self.iteration}, {self.sub_calls} sub-calls\n\n".encode()


async def _run(request: web.Request, state: ServerState, chat: ChatRequest, req: Any, spent: list) -> web.StreamResponse:
    from rlm_cli.run.service import run_question

    started = asyncio.Event()
    progress = ProgressView()
    outcomes: list[Any] = []

    def on_started(outcome: Any) -> None:
        request["run_id"] = outcome.run_id
        outcomes.append(outcome)
        started.set()

    def attach(bus: Any) -> ProgressView:
        bus.add(progress)
        return progress

    task = asyncio.create_task(run_question(req, attach, lm_semaphore=state.lm_semaphore, started=on_started))
    state.tasks.add(task)
    try:
        if chat.stream:
            return await _stream(request, state, chat, task, started, progress, spent, req.log_writer)
        outcome = await asyncio.shield(task)
        await req.log_writer.drained()  # the file is whole before the client hears of the run
        spent[0] = _cost(outcome)
        return await _plain(request, state, chat, outcome, spent)
    except asyncio.CancelledError:  # the client left or the server stops: end the run, wait for its trajectory
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        with contextlib.suppress(BaseException):
            await req.log_writer.drained()
        raise
    finally:
        state.tasks.discard(task)
        if spent[0] is None and outcomes:  # cancelled or failed: the provisional outcome's usage
            spent[0] = _cost(task.result() if task.done() and not task.cancelled() and not task.exception()
                             else outcomes[0])


def _cost(outcome: Any) -> float | None:
    return (outcome.usage or {}).get("total_cost_usd")


def _failure(outcome: Any) -> ApiError | None:
    """The error to answer for a run that gave no usable answer, else None."""
    status = outcome.result.status
    if status == "error":
        message = (outcome.result.error or {}).get("message") or "the run failed"
        return ApiError(500, f"run {outcome.run_id} failed: {message}", "run_error")
    if status == "interrupted":
        return ApiError(503, f"run {outcome.run_id} was interrupted (the server is shutting down)", "interrupted")
    return None


async def final_answer(state: ServerState, chat: ChatRequest, outcome: Any) -> tuple[str, str, dict]:
    """``(content, finish_reason, usage)`` for a run that answered: the answer checked against
    ``response_format`` (one repair turn by the root LM when it fails, its cost counted), then cut
    at ``stop`` and ``max_tokens``. Raises ApiError 500 ``response_format_failed`` when the answer
    is still not the JSON asked for."""
    text = outcome.result.answer or ""
    usage = replies.usage_of(outcome.usage)
    if chat.response_format is not None:
        text, error = answer.check_json(text, chat.response_format)
        if error is not None:
            repaired, cost, tokens = await _repair(state, chat, text, error)
            usage["prompt_tokens"] += tokens[0]
            usage["completion_tokens"] += tokens[1]
            usage["total_tokens"] += sum(tokens)
            if cost is not None:
                usage["cost_usd"] = (usage.get("cost_usd") or 0.0) + cost
            if repaired is not None:
                text, error = answer.check_json(repaired, chat.response_format)
            if error is not None:
                raise ApiError(500, f"run {outcome.run_id}: the answer is not the JSON asked for by response_format "
                               f"({error}), even after one repair turn", "response_format_failed")
    text, cut = answer.shape(text, chat.stop, chat.max_tokens)
    finish = "length" if cut else replies.FINISH.get(outcome.result.status, "stop")
    return text, finish, usage


async def _repair(state: ServerState, chat: ChatRequest, text: str, error: str,
                  ) -> tuple[str | None, float | None, tuple[int, int]]:
    """One root-LM call asking to fix ``text`` into the requested JSON: ``(reply or None, USD, (in, out)
    tokens)``; a failed call gives None (the caller answers the error)."""
    import os

    from rlm_cli.lm.client import LMClient, check_backend
    from rlm_cli.settings.endpoints import lm_endpoints

    settings = state.cfg.settings
    backend = check_backend(os.environ.get("RLM_LM_BACKEND", "").strip().lower() or "auto")
    lm = LMClient(**lm_endpoints(settings), timeout_s=state.cfg.request_timeout,
                  options=settings.options, prices=settings.prices, backend=backend, max_retries=1,
                  backend_override=state.lm_paths)
    try:
        async with lm, state.lm_semaphore:
            result = await lm.complete(state.cfg.model_names[chat.model],
                                       answer.repair_messages(text, chat.response_format, error), role="root")
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - the answer stays unrepaired; the caller says so
        return None, None, (0, 0)
    state.spending.record(result.usage.cost_usd)
    return result.text, result.usage.cost_usd, (result.usage.input_tokens, result.usage.output_tokens)


async def _plain(request: web.Request, state: ServerState, chat: ChatRequest, outcome: Any, spent: list,
                 ) -> web.Response:
    failure = _failure(outcome)
    if failure:
        raise failure
    content, finish, usage = await final_answer(state, chat, outcome)
    return web.json_response(replies.completion(outcome, chat.model, content, finish, usage),
                             headers={"X-RLM-Run-Id": outcome.run_id})


def _sse(doc: Any) -> bytes:
    return b"data: " + json.dumps(doc, ensure_ascii=False).encode("utf-8") + b"\n\n"


PROGRESS_POLL_S = 0.5
"""Seconds between looks at a streamed run's progress (a comment is sent when it changed)."""


async def _stream(request: web.Request, state: ServerState, chat: ChatRequest, task: asyncio.Task,
                  started: asyncio.Event, progress: ProgressView, spent: list, writer: Any,
                  ) -> web.StreamResponse:
    from rlm_cli.serve.guard import add_cors

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
    add_cors(request, resp, state.cfg)
    await resp.prepare(request)
    await resp.write(_sse(replies.chunk(run_id, chat.model, created, {"role": "assistant", "content": ""})))
    shown, quiet_since = b"", time.monotonic()
    while not task.done():
        await asyncio.wait({asyncio.shield(task)}, timeout=PROGRESS_POLL_S)
        if task.done():
            break
        comment = progress.comment()
        if comment != shown or time.monotonic() - quiet_since >= KEEPALIVE_S:
            await resp.write(comment)  # an SSE comment: never part of the content; reveals a gone client
            shown, quiet_since = comment, time.monotonic()
    with contextlib.suppress(Exception):
        await writer.drained()
    try:
        outcome = task.result()
        spent[0] = _cost(outcome)
        failure = _failure(outcome)
        if failure is None:
            content, finish, usage = await final_answer(state, chat, outcome)
    except ApiError as exc:
        failure = exc
    except RlmError:
        failure = ApiError(400, "the run could not load its input (see the server's log)", "unusable_input")
    except Exception as exc:  # noqa: BLE001 - reported to the client in OpenAI's error shape
        failure = ApiError(500, f"internal error: {type(exc).__name__}", "internal_error")
    if failure:
        request["status"] = failure.status
        await resp.write(_sse(error_body(failure.status, failure.message, failure.code)))
    else:
        for piece in replies.pieces(content):
            await resp.write(_sse(replies.chunk(run_id, chat.model, created, {"content": piece})))
        await resp.write(_sse(replies.chunk(run_id, chat.model, created, {}, finish)))
        if chat.include_usage:
            await resp.write(_sse(replies.chunk(run_id, chat.model, created, None, usage=usage)))
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp
