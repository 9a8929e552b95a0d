"""LM client pieces that need no server: prompt-cache markers, Retry-After parsing (the request
paths themselves are tested in test_lm_paths.py)."""

from __future__ import annotations

from rlm_cli.lm.client import LMClient, needs_cache_markers, parse_retry_after


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
