"""Issue #10, class 6 and parts of 10: provider replies are hostile input, at the LM client over HTTP.

A reply cut off, a 200 with an error body, no choices, null content or invalid JSON is a retryable
fault, then a clear error, on both request paths, streamed or not; a code block that never closed is
not run. What the run makes of such replies (retried, not spent as iterations; unclosed blocks not
run and the root told; bounded root and sub-LM replies; a missing FINAL_VAR variable never the
answer; a slow final-variable lookup not the --timeout budget) is tested in process in
tests/unit/test_engine_loop.py and tests/unit/test_engine_budgets.py.
"""

from __future__ import annotations

import asyncio

import pytest
from scripted_server import MALFORMED, Reply

from rlm_cli.errors import ProviderError
from rlm_cli.lm.client import LMClient
from rlm_cli.run.parsing import parse_reply

BACKENDS = ["auto", "litellm"]

# What the final error must name, per fault (both paths, streamed or not).
NAMED = {
    "cut": ("cut off", "connection", "Connection error"),
    "drop": ("connection", "Connection error", "payload is not completed"),
    "error_body": ("upstream exploded",),
    "no_choices": ("no choices", "cut off", "'choices' that is not a list"),
    "null_content": ("content is null",),
    "invalid_json": ("not valid JSON",),
}


def _client(server, backend: str, **kw) -> LMClient:
    return LMClient(api_base=server.base_url, api_key="sk-test", backend=backend, backoff_base_s=0.001,
                    backoff_max_s=0.01, **kw)


def _ask(client: LMClient, model: str, stream: bool = False):
    async def go():
        async with client:
            return await client.complete(model, [{"role": "user", "content": "hi"}], role="root",
                                         on_delta=(lambda piece: None) if stream else None)
    return asyncio.run(go())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("kind", MALFORMED)
def test_a_malformed_reply_is_retried_then_a_clear_error(scripted_server, backend, stream, kind):
    scripted_server.default("root", Reply("upstream exploded halfway", malformed=kind))
    with pytest.raises(ProviderError) as exc:
        _ask(_client(scripted_server, backend, max_retries=2), "openai/root", stream)
    message = str(exc.value)
    assert "gave up after 3 attempts" in message, message
    assert any(word in message for word in NAMED[kind]), message
    assert len(scripted_server.requests_for("root")) == 3


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("kind", ["cut", "error_body", "no_choices", "null_content", "invalid_json"])
def test_a_malformed_reply_then_a_good_one_gives_the_good_one(scripted_server, backend, stream, kind):
    scripted_server.script("root", Reply("broken", malformed=kind), "the real answer")
    result = _ask(_client(scripted_server, backend), "openai/root", stream)
    assert (result.text, result.attempts) == ("the real answer", 2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_reply_cut_by_the_token_limit_is_a_real_reply(scripted_server, backend, stream):
    scripted_server.script("root", Reply("half an ans", finish_reason="length", send_usage=False))
    result = _ask(_client(scripted_server, backend), "openai/root", stream)
    assert (result.text, result.attempts) == ("half an ans", 1)
    assert result.usage.output_tokens > 0  # no usage from the server: still an estimate


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("reason", ["length", "content_filter"])
def test_null_content_cut_by_the_token_limit_or_a_filter_is_an_empty_reply(scripted_server, stream, reason):
    scripted_server.script("root", Reply("", malformed="null_content", finish_reason=reason))
    result = _ask(_client(scripted_server, "auto"), "openai/root", stream)
    assert (result.text, result.attempts) == ("", 1)


# --- unclosed blocks ---------------------------------------------------------------------------
def test_an_unclosed_block_is_not_run():
    parsed = parse_reply("Let me look.\n```repl\nimport shutil\nshutil.rmtree('/')")
    assert parsed.blocks == [] and parsed.unclosed_block
    parsed = parse_reply("```repl\nx = 1\n```\nthen\n```repl\nprint(x)")  # the closed one runs
    assert parsed.blocks == ["x = 1"] and parsed.unclosed_block
    parsed = parse_reply("FINAL(guess)\n```repl\nprint(1)")  # no answer taken beside unrun code
    assert parsed.final_text is None and parsed.final_beside_code
