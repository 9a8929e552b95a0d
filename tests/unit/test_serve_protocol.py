"""``rlm serve``'s request validation, per-request budgets, bind rule and key check, in process."""

from __future__ import annotations

import pytest

from rlm_cli.errors import UsageError
from rlm_cli.run.budget import Limits
from rlm_cli.serve.app import authorized
from rlm_cli.serve.config import check_bind, is_loopback, model_names
from rlm_cli.serve.errors import ApiError
from rlm_cli.serve.protocol import lower_limits, parse_budgets, parse_chat
from rlm_cli.serve.replies import usage_of

SERVED = model_names("openai/root", {"fast": "openai/mini"})


def test_question_is_last_user_message_and_the_rest_is_context():
    chat = parse_chat({"model": "rlm", "messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "first"},
        {"role": "assistant", "content": [{"type": "text", "text": "reply"}]},
        {"role": "user", "content": "the question"}]}, SERVED)
    assert chat.question == "the question"
    assert chat.context == "[system]\nbe brief\n\n[user]\nfirst\n\n[assistant]\nreply"
    assert not chat.stream and chat.budgets == {}


@pytest.mark.parametrize("body, status", [
    ([], 400), ({"messages": [{"role": "user", "content": "q"}]}, 400),
    ({"model": "gpt-4o", "messages": [{"role": "user", "content": "q"}]}, 404),
    ({"model": "rlm", "messages": []}, 400), ({"model": "rlm", "messages": ["q"]}, 400),
    ({"model": "rlm", "messages": [{"role": "root", "content": "q"}]}, 400),
    ({"model": "rlm", "messages": [{"role": "user", "content": 5}]}, 400),
    ({"model": "rlm", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400),
    ({"model": "rlm", "messages": [{"role": "user", "content": "  "}]}, 400),
    ({"model": "rlm", "messages": [{"role": "user", "content": "q"}], "stream": "yes"}, 400),
    ({"model": "rlm", "messages": [{"role": "user", "content": "q"}], "rlm": {"max_cost": -1}}, 400),
])
def test_bad_bodies(body, status):
    with pytest.raises(ApiError) as err:
        parse_chat(body, SERVED)
    assert err.value.status == status


def test_budgets_lower_never_raise():
    limits = Limits(max_iterations=5, max_cost=None, step_timeout=10.0)
    lowered = lower_limits(limits, parse_budgets({"max_iterations": 50, "max_cost": 0.2, "step_timeout": 2.5}))
    assert (lowered.max_iterations, lowered.max_cost, lowered.step_timeout) == (5, 0.2, 2.5)
    for bad in ({"max_iterations": 1.5}, {"max_depth": True}, {"max_cost": float("nan")}, {"x": 1}, "cheap"):
        with pytest.raises(ApiError):
            parse_budgets(bad)


def test_bind_rule_and_key():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "a-key")
    with pytest.raises(UsageError):
        check_bind("0.0.0.0", None)
    assert authorized("Bearer k3y-value", "k3y-value") and authorized("bearer k3y-value", "k3y-value")
    assert not authorized("Bearer wrong", "k3y-value") and not authorized(None, "k3y-value")
    assert not authorized("Basic k3y-value", "k3y-value")


def test_usage_totals_root_and_sub():
    u = usage_of({"root": {"input_tokens": 10, "output_tokens": 2}, "sub": {"input_tokens": 5, "output_tokens": 1},
                  "total_cost_usd": 0.01})
    assert u == {"prompt_tokens": 15, "completion_tokens": 3, "total_tokens": 18, "cost_usd": 0.01}
    assert model_names("openai/root", {"fast": "openai/mini"}) == {"rlm": "openai/root", "rlm/fast": "openai/mini"}


def test_nested_slots_hold_both_bounds():
    import asyncio

    from rlm_cli.run.service import NestedSlots

    async def main() -> tuple[int, int]:
        shared = asyncio.Semaphore(2)
        runs = [NestedSlots(asyncio.Semaphore(3), shared) for _ in range(2)]
        live = peak = 0

        async def call(slots) -> None:
            nonlocal live, peak
            async with slots:
                live += 1
                peak = max(peak, live)
                await asyncio.sleep(0.01)
                live -= 1

        await asyncio.gather(*(call(r) for r in runs for _ in range(5)))
        return peak, shared._value

    assert asyncio.run(main()) == (2, 2)
