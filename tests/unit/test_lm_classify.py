"""One error classifier for both request paths (rlm_cli.lm.errors.classify): the same fault gives the
same decision whichever library reported it."""

from __future__ import annotations

import pytest

from rlm_cli.lm.errors import FatalLMError, Fault, MalformedReply, TransientLMError, classify


def _fault(kind=None, status=None, text="boom"):
    return Fault(kind, status, None, "SomeError", text)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503])
def test_retryable_statuses(status):
    assert isinstance(classify(_fault(status=status), "m"), TransientLMError)


@pytest.mark.parametrize("status,kind", [(401, "auth"), (403, "auth"), (404, "not_found"), (400, "bad_request"),
                                         (422, "bad_request")])
def test_fatal_statuses(status, kind):
    err = classify(_fault(status=status), "m")
    assert isinstance(err, FatalLMError) and err.kind == kind


@pytest.mark.parametrize("kind,expected", [
    ("auth", "auth"), ("not_found", "not_found"), ("unknown_provider", "not_found"),
    ("context_window", "context_window"), ("bad_request", "bad_request"), (None, "other")])
def test_fatal_kinds(kind, expected):
    err = classify(_fault(kind=kind), "m")
    assert isinstance(err, FatalLMError) and err.kind == expected


@pytest.mark.parametrize("kind", ["transient", "connection_lost", "stream_error"])
def test_transient_kinds(kind):
    assert isinstance(classify(_fault(kind=kind), "m"), TransientLMError)


def test_not_json_is_a_malformed_reply_and_context_length_text_is_the_window():
    assert isinstance(classify(_fault(kind="not_json"), "m"), MalformedReply)
    err = classify(_fault(status=400, text="This model's maximum context length is 8192 tokens"), "m")
    assert err.kind == "context_window"
