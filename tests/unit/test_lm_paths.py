"""The two request paths (OpenAI SDK for ``openai/`` models, litellm for the rest) behave the same:
over the scripted server's real HTTP, for streaming, usage, retries, error kinds and prices."""

from __future__ import annotations

import asyncio
import socket

import pytest
from scripted_server import Reply

from rlm_cli.errors import ProviderError
from rlm_cli.lm import pricing
from rlm_cli.lm.client import REFUSED_RETRIES, FatalLMError, LMClient

BACKENDS = ["auto", "litellm"]


def _client(server, backend: str, **kw) -> LMClient:
    return LMClient(api_base=server.base_url, api_key="sk-test", backend=backend, backoff_base_s=0.01, **kw)


def _ask(client: LMClient, model: str, **kw):
    async def go():
        async with client:
            return await client.complete(model, [{"role": "user", "content": "hi"}], **kw)
    return asyncio.run(go())


def test_openai_models_take_the_sdk_path_unless_told_otherwise():
    assert LMClient().backend_for("openai/gpt-4o").name == "openai"
    assert LMClient().backend_for("anthropic/claude-haiku-4-5").name == "litellm"
    assert LMClient().backend_for("gpt-4o").name == "litellm"  # bare names: litellm resolves the provider
    assert LMClient(backend="litellm").backend_for("openai/gpt-4o").name == "litellm"


@pytest.mark.parametrize("backend", BACKENDS)
def test_plain_and_streamed_calls_report_text_and_usage(scripted_server, backend):
    scripted_server.script("root", Reply(text="Hello streamed world, in pieces.", prompt_tokens=77,
                                         completion_tokens=9, cached_tokens=40), "plain reply")
    pieces: list[str] = []
    streamed = _ask(_client(scripted_server, backend), "openai/root", role="root", on_delta=pieces.append)
    assert streamed.text == "Hello streamed world, in pieces." and "".join(pieces) == streamed.text
    assert len(pieces) > 1
    assert (streamed.usage.input_tokens, streamed.usage.output_tokens, streamed.usage.cached_tokens) == (77, 9, 40)
    plain = _ask(_client(scripted_server, backend), "openai/root", role="root")
    assert plain.text == "plain reply" and plain.usage.output_tokens > 0
    first, second = scripted_server.requests_for("root")
    assert first.body["stream"] is True and not second.body.get("stream")
    assert first.body["model"] == "root"  # the provider prefix is not sent


@pytest.mark.parametrize("backend", BACKENDS)
def test_server_errors_are_retried_then_given_up(scripted_server, backend):
    scripted_server.default("sub", Reply(status=503, text="overloaded", headers={"Retry-After": "0"}))
    with pytest.raises(ProviderError, match="gave up after 3 attempts"):
        _ask(_client(scripted_server, backend, max_retries=2), "openai/sub")
    assert len(scripted_server.requests_for("sub")) == 3  # the libraries' own retries are off


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("status", "text", "kind"), [
    (401, "invalid api key", "auth"),
    (404, "no such model", "not_found"),
    (400, "This model's maximum context length is 8192 tokens", "context_window"),
    (400, "temperature is not supported", "bad_request"),
])
def test_fatal_errors_are_not_retried(scripted_server, backend, status, text, kind):
    scripted_server.default("sub", Reply(status=status, text=text))
    with pytest.raises(FatalLMError) as exc:
        _ask(_client(scripted_server, backend), "openai/sub")
    assert exc.value.kind == kind
    assert len(scripted_server.requests_for("sub")) == 1


def test_options_the_sdk_does_not_name_reach_the_server_in_the_body(scripted_server):
    scripted_server.default("sub", "ok")
    client = _client(scripted_server, "auto", options={"sub": {"temperature": 0.2, "top_k": 5,
                                                                "drop_params": True}})
    _ask(client, "openai/sub")
    body = scripted_server.requests_for("sub")[0].body
    assert body["temperature"] == 0.2 and body["top_k"] == 5 and "drop_params" not in body


def test_a_refused_connection_is_retried_only_briefly():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    notes: list[str] = []
    client = LMClient(api_base=f"http://127.0.0.1:{port}/v1", api_key="x", backoff_base_s=0.01,
                      on_retry=notes.append)
    with pytest.raises(ProviderError, match=f"gave up after {REFUSED_RETRIES + 1} attempts"):
        _ask(client, "openai/sub")
    assert len(notes) == REFUSED_RETRIES


def test_missing_key_is_fatal_without_a_request(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(FatalLMError) as exc:
        _ask(LMClient(api_base="http://127.0.0.1:9/v1"), "openai/sub")
    assert exc.value.kind == "auth" and "OPENAI_API_KEY" in str(exc.value)


@pytest.mark.parametrize(("model", "inp", "out", "cached"), [
    ("openai/gpt-4o-mini", 1_000_000, 1000, 0),
    ("openai/gpt-4o-mini", 10_000, 500, 4_000),
    ("openai/gpt-5", 50_000, 2_000, 10_000),
    ("gemini/gemini-2.5-pro", 250_000, 1_000, 0),  # above its 200k-token tier
])
def test_catalogue_prices_like_litellm(model, inp, out, cached):
    from rlm_cli.lm.backend_litellm import load_litellm

    lt = load_litellm()
    details = {"cached_tokens": cached} if cached else None
    usage = lt.Usage(prompt_tokens=inp, completion_tokens=out, total_tokens=inp + out,
                     prompt_tokens_details=details)
    want = lt.completion_cost(completion_response=lt.ModelResponse(model=model.split("/", 1)[1], usage=usage),
                              model=model)
    assert pricing.cost_usd(model, inp, out, cached) == pytest.approx(want, rel=1e-6)
    assert pricing.cost_usd("openai/no-such-model", inp, out) is None


def test_catalogue_skips_parsing_for_models_it_does_not_mention(monkeypatch):
    parsed: list[int] = []
    real = pricing.load_catalogue
    monkeypatch.setattr(pricing, "_entries", {})
    monkeypatch.setattr(pricing, "load_catalogue", lambda text=None: parsed.append(1) or real(text))
    assert pricing.model_info("openai/my-local-qwen-7b", "openai/another-local-model") is None
    assert parsed == []
    assert pricing.context_window("openai/gpt-4o-mini") == 128000
    assert parsed == [1]
    assert pricing.model_info("openai/my-local-qwen-7b") is None and parsed == [1]  # memoised


def test_an_error_event_inside_a_stream_is_retried():
    import httpx
    import openai

    from rlm_cli.lm.backend_openai import OpenAIBackend
    from rlm_cli.lm.errors import TransientLMError

    exc = openai.APIError("Overloaded", request=httpx.Request("POST", "http://x/v1/chat/completions"), body=None)
    assert isinstance(OpenAIBackend().classify(exc, "openai/x"), TransientLMError)


@pytest.mark.parametrize("backend", BACKENDS)
def test_servers_that_report_no_usage_get_an_estimate_not_zero(scripted_server, backend):
    """llama.cpp's server ignores stream_options.include_usage: budgets must still count tokens."""
    text = "An answer of about forty characters....."
    scripted_server.script("root", Reply(text=text, send_usage=False), Reply(text=text, send_usage=False))
    messages = [{"role": "user", "content": "x" * 400}]

    async def both():
        async with _client(scripted_server, backend) as client:
            streamed = await client.complete("openai/root", messages, role="root", on_delta=lambda piece: None)
            plain = await client.complete("openai/root", messages, role="root")
        return streamed, plain

    for result in asyncio.run(both()):
        assert result.text == text
        assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0  # litellm: tiktoken's count
        if backend == "auto":  # ours: characters / 4
            assert (result.usage.input_tokens, result.usage.output_tokens) == (100, 10)


def test_catalogue_knows_the_context_window_of_every_default_model():
    """Sub-LM prompt sizes come from here (engine.sub_chars_for), without importing litellm."""
    from rlm_cli.settings.resolve import PROVIDER_DEFAULTS

    for _keys, root, sub in PROVIDER_DEFAULTS:
        for model in (root, sub):
            assert (pricing.context_window(model) or 0) >= 32_000, model
