"""The LM client through litellm and the scripted server: streaming, usage, retries, classification."""

from __future__ import annotations

import asyncio

import pytest
from scripted_server import Reply

from rlm_cli.errors import ProviderError
from rlm_cli.lm import FatalLMError, LMClient, needs_cache_markers, parse_retry_after


def test_streaming_reassembles_text_and_usage(scripted_server):
    scripted_server.script("root", Reply(text="Hello streamed world, with several pieces.", prompt_tokens=77,
                                         completion_tokens=9, cached_tokens=40))
    pieces: list[str] = []
    client = LMClient(api_base=scripted_server.base_url, api_key="sk-test")
    result = asyncio.run(client.complete("openai/root", [{"role": "user", "content": "hi"}], role="root",
                                         on_delta=pieces.append))
    assert result.text == "Hello streamed world, with several pieces."
    assert len(pieces) > 1 and "".join(pieces) == result.text
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.cached_tokens) == (77, 9, 40)
    assert scripted_server.requests_for("root")[0].body.get("stream") is True


def test_retries_then_gives_up_with_provider_error(scripted_server):
    scripted_server.default("sub", Reply(status=503, text="overloaded", headers={"Retry-After": "0"}))
    client = LMClient(api_base=scripted_server.base_url, api_key="sk-test", max_retries=2)
    with pytest.raises(ProviderError, match="gave up after 3 attempts"):
        asyncio.run(client.complete("openai/sub", [{"role": "user", "content": "x"}]))
    assert len(scripted_server.requests_for("sub")) == 3  # litellm's own retries are off


def test_not_found_is_fatal_and_not_retried(scripted_server):
    scripted_server.default("sub", Reply(status=404, text="no such model"))
    client = LMClient(api_base=scripted_server.base_url, api_key="sk-test")
    with pytest.raises(FatalLMError) as exc:
        asyncio.run(client.complete("openai/sub", [{"role": "user", "content": "x"}]))
    assert exc.value.kind == "not_found"
    assert len(scripted_server.requests_for("sub")) == 1


def test_cache_markers_only_for_anthropic_root_calls():
    client = LMClient()
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    kw = client.request_kwargs("anthropic/claude-sonnet-4-5", msgs, "root")
    assert kw["cache_control_injection_points"][0] == {"location": "message", "role": "system"}
    assert "cache_control_injection_points" not in client.request_kwargs("anthropic/claude-sonnet-4-5", msgs, "sub")
    assert "cache_control_injection_points" not in client.request_kwargs("openai/gpt-4o", msgs, "root")
    assert needs_cache_markers("bedrock/anthropic.claude-3-haiku") and not needs_cache_markers("openai/o3")
    assert kw["timeout"] == client.timeout_s and kw["num_retries"] == 0


def test_parse_retry_after():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: no wait
