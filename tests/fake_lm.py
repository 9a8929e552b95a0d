"""An in-process fake LM provider behind the real LM contract, for tests of the run's rules.

:class:`FakeLM` is a request path as :class:`rlm_cli.lm.client.LMClient` uses one (``complete``,
``stream``, ``classify``, ``cost``, ``aclose``: the methods of
:class:`rlm_cli.lm.backend_openai.OpenAIBackend`); give it to a client as
``LMClient(backend_override=fake)``. It is scripted exactly like the HTTP
:class:`~scripted_server.ScriptedServer` (both are a :class:`~scripted_replies.ReplyScript`:
``script``, ``default``, ``fail_randomly``, ``requests_for``, ``max_in_flight``, and the same
:class:`~scripted_replies.Reply` with its delays, statuses, token counts and malformed answers), and
it answers with the same payloads, so everything above the transport is the real code: replies are
read and checked by :func:`rlm_cli.lm.replies.reply_text` and
:class:`rlm_cli.lm.replies.StreamCheck`, error statuses are raised as the OpenAI SDK's own exception
classes and classified by the OpenAI path's classifier, costs come from litellm's bundled map as on
that path. No socket, no thread: a scripted ``delay_s`` is an ``asyncio.sleep``.

Model names are recorded as a provider sees them (``openai/root`` -> ``root``), so
``fake.requests_for("root")[1].body["messages"]`` reads as it does against the server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from collections.abc import Callable
from typing import Any

from scripted_replies import (
    Headers,
    RecordedRequest,
    Reply,
    ReplyScript,
    completion_payload,
    error_payload,
    stream_events,
    usage_payload,
)

from rlm_cli.lm import backend_openai, pricing
from rlm_cli.lm.errors import MalformedReply, short_message
from rlm_cli.lm.replies import StreamCheck, reply_text
from rlm_cli.run.events import Usage

__all__ = ["FakeLM"]

PATH = "/v1/chat/completions"
URL = "http://fake-lm.invalid" + PATH
# litellm-only arguments and client settings: not part of a request body (as on the OpenAI path)
_NOT_IN_BODY = frozenset({"num_retries", "max_retries", "drop_params", "api_base", "api_key", "base_url",
                          "custom_llm_provider", "cache_control_injection_points", "mock_response", "timeout",
                          "extra_headers", "extra_query", "extra_body"})


def provider_name(model: str) -> str:
    """The model name a provider sees: the part after the first ``/`` (``openai/root`` -> ``root``)."""
    return model.split("/", 1)[1] if "/" in model else model


class FakeLM(ReplyScript):
    """Scripted LM replies served in process (see the module docstring). Not thread-safe across
    event loops: one run at a time."""

    name = "fake"

    def __init__(self) -> None:
        super().__init__()
        self.closed = 0  # aclose() calls

    # -- the request path's contract ------------------------------------------------------------
    async def complete(self, kwargs: dict[str, Any]) -> tuple[str, Any]:
        """One non-streamed call: (reply text, the chat completion as a dict). Raises what the
        OpenAI path raises for the scripted answer: the SDK's status errors, a connection error, or
        :class:`~rlm_cli.lm.errors.MalformedReply` for an answer that is not a usable completion."""
        rec, reply, model = await self._begin(kwargs, stream=False)
        try:
            self._raise_status(reply)
            kind = reply.malformed
            if kind in ("cut", "drop"):  # half the body, then the connection goes: the SDK's wording
                raise _connection_error("Connection error.")
            base = {"id": "chatcmpl-broken", "object": "chat.completion", "created": int(time.time()), "model": model}
            if kind == "error_body":
                payload: Any = error_payload(400, reply.text)
            elif kind == "no_choices":
                payload = base
            elif kind == "null_content":
                payload = {**base, "choices": [{"index": 0, "message": {"role": "assistant", "content": None},
                                                "finish_reason": reply.finish_reason}]}
            elif kind == "invalid_json":  # the server's broken body, parsed as the SDK parses it
                raw = json.dumps({**base, "choices": [{"index": 0, "message": {"role": "assistant",
                                                                                "content": reply.text}}]})
                try:
                    json.loads(raw[: len(raw) // 2] + "<html>not json")
                except ValueError as exc:  # as OpenAIBackend.complete words it
                    raise MalformedReply(f"the reply is not valid JSON ({short_message(exc)})") from exc
            else:
                payload = completion_payload(reply, self._ident(), int(time.time()), model,
                                             usage_payload(reply, rec.body))
            text = reply_text(payload)
            self._finish(rec, reply.status, reply.text)
            return text, payload
        except Exception:
            self._settle(rec, reply)
            raise
        finally:
            self._drop(rec)

    async def stream(self, kwargs: dict[str, Any], on_delta: Callable[[str], None]) -> tuple[str, Any]:
        """One streamed call; ``on_delta`` gets each text piece. Returns (text, the chunk that carried
        usage, or None). Raises as :meth:`complete` does, and as the SDK's stream does for an error
        event (:class:`openai.APIError`) or a connection dropped mid-stream."""
        import openai

        rec, reply, model = await self._begin(kwargs, stream=True)
        try:
            self._raise_status(reply)
            want_usage = bool((rec.body.get("stream_options") or {}).get("include_usage"))
            usage = usage_payload(reply, rec.body) if want_usage and reply.send_usage else None
            events = stream_events(reply, self._ident(), int(time.time()), model, usage)
            pieces: list[str] = []
            last_usage = None
            check = StreamCheck()
            for n, event in enumerate(events):
                if n and reply.chunk_delay_s > 0:
                    await asyncio.sleep(reply.chunk_delay_s)
                if event == "[DONE]":
                    break
                if isinstance(event, str):
                    try:
                        json.loads(event)
                    except ValueError as exc:
                        raise MalformedReply(f"a streamed event is not valid JSON ({short_message(exc)})") from exc
                if isinstance(event, dict) and event.get("error"):
                    error = event["error"]
                    raise openai.APIError(error.get("message") or "An error occurred during streaming",
                                          _request(), body=error)
                if isinstance(event, dict) and event.get("usage"):
                    last_usage = event
                piece = check.feed(event)
                if piece:
                    pieces.append(piece)
                    on_delta(piece)
            if reply.malformed == "drop":
                raise _transport_error("peer closed connection without sending complete message body")
            check.finish()
            self._finish(rec, reply.status, reply.text)
            return "".join(pieces), last_usage
        except Exception:
            self._settle(rec, reply)
            raise
        finally:
            self._drop(rec)

    def cost(self, model: str, response: Any, usage: Usage) -> float | None:
        """USD for ``usage`` from litellm's bundled price map, as on the OpenAI path; None when unpriced."""
        return pricing.cost_usd(model, usage.input_tokens, usage.output_tokens, usage.cached_tokens)

    def classify(self, exc: BaseException, model: str) -> Exception:
        """The OpenAI path's own classification of ``exc`` (transient or fatal)."""
        return backend_openai.OpenAIBackend().classify(exc, model)

    async def aclose(self) -> None:
        """Nothing to close; counted in ``closed``."""
        self.closed += 1

    # -- internals -----------------------------------------------------------------------------
    async def _begin(self, kwargs: dict[str, Any], stream: bool) -> tuple[RecordedRequest, Reply, str]:
        """Record the request as a provider would see it, pick its reply, wait its ``delay_s``."""
        model = provider_name(kwargs["model"])
        body = {k: v for k, v in kwargs.items() if k not in _NOT_IN_BODY}
        body["model"] = model
        body.update(kwargs.get("extra_body") or {})
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        body = json.loads(json.dumps(body))  # what went over the wire: a copy, not the live history
        key = kwargs.get("api_key") or os.environ.get("OPENAI_API_KEY") or ""
        rec = self._add(RecordedRequest(path=PATH, method="POST", model=model, body=body,
                                        headers=Headers(Authorization=f"Bearer {key}"), t_start=time.monotonic()),
                        chat=True)
        reply = self._next_reply(model, body)
        if reply.echo_auth:
            reply = dataclasses.replace(reply, text=f"{reply.text} {rec.headers['Authorization']}")
        if reply.delay_s > 0:
            try:
                await asyncio.sleep(reply.delay_s)
            except BaseException:
                self._drop(rec)
                raise
        return rec, reply, model

    def _raise_status(self, reply: Reply) -> None:
        """Raise the OpenAI SDK's exception for an error status, as its client would."""
        if reply.status == 200:
            return
        import openai

        httpx = _http_library()
        message = reply.text or f"scripted server: error {reply.status}"
        payload = error_payload(reply.status, message)
        response = httpx.Response(reply.status, headers=reply.headers, json=payload, request=_request())
        # The SDK's own mapping of a response to its exception (class and message wording differ by
        # version); it reads nothing of the client but the method it calls.
        raise object.__new__(openai.AsyncOpenAI)._make_status_error_from_response(response)

    def _ident(self) -> str:
        return f"chatcmpl-fake-{self._next_id()}"

    def _settle(self, rec: RecordedRequest, reply: Reply) -> None:
        """End ``rec`` as answered with ``reply``'s status and text (an error status, a broken answer)."""
        if rec.t_end is None:
            self._finish(rec, reply.status, reply.text or f"scripted server: error {reply.status}")

    def _drop(self, rec: RecordedRequest) -> None:
        """End ``rec`` as dropped (no status) unless it was answered."""
        if rec.t_end is None:
            self._finish(rec, None, None)


def _http_library():
    """The HTTP library the OpenAI SDK is built on (``httpx2`` for openai 3.x, ``httpx`` before), so
    that its exceptions get the request and response types they expect."""
    import importlib
    import sys

    import openai  # noqa: F401 - loads its HTTP library

    return sys.modules.get("httpx2") or importlib.import_module("httpx")


def _request():
    return _http_library().Request("POST", URL)


def _connection_error(message: str) -> Exception:
    import openai

    return openai.APIConnectionError(message=message, request=_request())


def _transport_error(message: str) -> Exception:
    return _http_library().RemoteProtocolError(message, request=_request())
