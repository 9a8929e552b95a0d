"""Budgets, sub-calls, recursion and provider faults, in process: the engine and a real REPL against
the FakeLM (no CLI, no HTTP). Budgets are guarantees: never more sub-calls than ``max_sub_calls``, no
LM call started once ``max_cost`` is reached, a run stopped at its ``timeout``; in-flight LM calls
bounded by ``concurrency``; retries of a flaky provider; ``rlm_query`` nesting to ``max_depth``."""

from __future__ import annotations

import asyncio

from engine_runner import run_engine
from helpers import assert_trajectory_shape, echo_reply, repl_pids, step_stdout
from scripted_server import Reply

from rlm_cli.lm.client import LMResult
from rlm_cli.run.budget import Budget, Limits
from rlm_cli.run.subcalls import MAX_BATCH


def test_ten_thousand_sub_calls_capped_by_max_sub_calls(fake_lm):
    fake_lm.script("root",
                   "```repl\nres = []\nfor b in range(100):\n"
                   "    res += llm_query_batched([f'item {b}-{i}' for i in range(100)])\n"
                   "errors = sum(r.startswith('Error:') for r in res)\nprint(len(res), errors)\n```",
                   "FINAL(best effort)")
    fake_lm.default("sub", "ok")
    run = run_engine(fake_lm, limits=Limits(max_sub_calls=50, concurrency=16))
    assert (run.status, run.answer, run.exit_code) == ("budget_exhausted", "best effort", 3)
    assert len(fake_lm.requests_for("sub")) == 50
    doc = run.doc
    assert_trajectory_shape(doc)
    assert doc["status"] == "budget_exhausted" and doc["exhausted"] == "sub_calls"
    assert step_stdout(doc).strip() == "10000 9950"  # the code kept running
    assert doc["usage"]["sub_calls"] == 50 and doc["usage"]["refused_sub_calls"] == 9950
    logged = [c for it in doc["iterations"] for st in it["steps"] for c in st["sub_calls"]]
    assert len(logged) == 50  # refusals are counted, not logged one by one
    assert any("sub-call budget" in n["message"] for n in doc["notices"])
    last_prompt = fake_lm.requests_for("root")[-1].body["messages"][-1]["content"]
    assert "sub_calls" in last_prompt and "Do not write any more code" in last_prompt


def test_max_cost_no_call_starts_after_the_limit(fake_lm):
    # gpt-4o-mini is priced by litellm's map ($0.15 per million input tokens): each sub-call costs $0.15.
    fake_lm.default("gpt-4o-mini", Reply(text="fine", prompt_tokens=1_000_000, completion_tokens=1))
    fake_lm.script("root", "```repl\nout = [llm_query(f'chunk {i}') for i in range(20)]\nprint(out.count('fine'))\n```",
                   "FINAL(never asked)")
    run = run_engine(fake_lm, sub_model="openai/gpt-4o-mini", limits=Limits(max_cost=0.5),
                     prices={"openai/root": (0, 0)})
    assert run.exit_code == 3
    assert len(fake_lm.requests_for("gpt-4o-mini")) == 4  # $0.60 spent after 4; the 5th never starts
    doc = run.doc
    assert doc["status"] == "budget_exhausted" and doc["exhausted"] == "cost"
    assert abs(doc["usage"]["total_cost_usd"] - 0.6) < 0.01
    assert len(fake_lm.requests_for("root")) == 1  # no best-answer call: the cost budget is spent


def test_max_tokens_stops_the_run_and_the_last_call_is_refused(fake_lm):
    fake_lm.default("root", Reply("```repl\nprint(1)\n```", prompt_tokens=600, completion_tokens=10))
    run = run_engine(fake_lm, limits=Limits(max_tokens=1000))
    assert (run.status, run.result.exhausted, run.answer) == ("budget_exhausted", "tokens", None)
    assert len(fake_lm.requests_for("root")) == 2  # 1,220 tokens after two calls; none started after


def test_a_flaky_provider_with_30_percent_errors_still_answers(fake_lm):
    fake_lm.fail_randomly(0.3, statuses=(429, 500, 503), seed=7, retry_after="0")
    fake_lm.script("root", "```repl\nr = llm_query_batched([f'q{i}' for i in range(30)])\n"
                           "print(sum(x == 'ok' for x in r))\n```", "FINAL(done)")
    fake_lm.default("sub", "ok")
    run = run_engine(fake_lm)
    assert (run.status, run.answer) == ("answered", "done")
    assert step_stdout(run.doc).strip() == "30"
    failed = [r for r in fake_lm.chat_requests() if r.status != 200]
    assert failed, "the fault injection did not fire"
    assert any("retrying in" in n for n in run.notices())


def test_retry_after_is_honoured(fake_lm):
    fake_lm.script("root", Reply(status=429, text="slow down", headers={"Retry-After": "1"}), "FINAL(after wait)")
    run = run_engine(fake_lm)
    assert (run.status, run.answer) == ("answered", "after wait")
    assert len(fake_lm.requests_for("root")) == 2
    retry = [n for n in run.notices() if "retrying in" in n]
    assert len(retry) == 1 and "slow down" in retry[0]
    assert 1.0 <= float(retry[0].split("retrying in ")[1].split("s")[0]) <= 1.25  # Retry-After + jitter


def test_an_authentication_error_ends_the_run_at_once(fake_lm):
    fake_lm.default("root", Reply(status=401, text="invalid api key"))
    run = run_engine(fake_lm)
    assert (run.status, run.exit_code) == ("error", 1)
    assert "authentication" in run.result.error["message"]
    assert len(fake_lm.requests_for("root")) == 1  # not retried
    assert run.doc["status"] == "error" and run.doc["error"]["message"]


def test_an_error_body_with_status_200_ends_the_run_clearly_not_after_20_iterations(fake_lm):
    fake_lm.default("root", Reply("The server is overloaded", malformed="error_body"))
    run = run_engine(fake_lm, max_retries=2)
    assert run.status == "error" and run.answer is None
    assert "overloaded" in run.result.error["message"] and "gave up after 3 attempts" in run.result.error["message"]
    assert len(fake_lm.requests_for("root")) == 3
    assert run.doc["status"] == "error"


def test_a_null_or_invalid_reply_is_retried_not_spent_as_an_iteration(fake_lm):
    fake_lm.script("root", Reply(malformed="null_content"), Reply("FINAL(wrong)", malformed="invalid_json"),
                   "FINAL(the answer)")
    run = run_engine(fake_lm)
    assert (run.status, run.answer) == ("answered", "the answer")
    assert len(run.doc["iterations"]) == 1 and len(fake_lm.requests_for("root")) == 3


def _depth_router(body: dict) -> str:
    """Root replies chosen by the RLM's depth (read from the system prompt) and its turn."""
    system = body["messages"][0]["content"]
    turn = sum(m["role"] == "assistant" for m in body["messages"])
    if "You are at depth 0" in system:
        return ("```repl\nans = rlm_query('find the colour', context=context[-200:])\nprint(ans)\n```"
                if turn == 0 else "FINAL(depth0 got it)")
    if "You are at depth 1" in system:
        return ("```repl\nprint(rlm_query('look closer', context=context))\n```" if turn == 0
                else "FINAL(depth1: blue)")
    # depth 2: the recursion limit; rlm_query degrades to llm_query here
    return ("```repl\nprint(rlm_query('final check'))\n```" if turn == 0 else "FINAL(depth2: blue)")


def test_depth_two_recursion_nests_trajectories(fake_lm):
    fake_lm.default("root", _depth_router)
    fake_lm.default("sub", "blue")
    run = run_engine(fake_lm, question="what colour?", files={"input.txt": "the sky is blue\n"},
                     limits=Limits(max_depth=2))
    assert (run.status, run.answer) == ("answered", "depth0 got it")
    doc = run.doc
    assert_trajectory_shape(doc)
    call1 = doc["iterations"][0]["steps"][0]["sub_calls"][0]
    assert call1["kind"] == "rlm" and call1["response"] == "depth1: blue"
    assert call1["iterations"][0]["depth"] == 1
    call2 = call1["iterations"][0]["steps"][0]["sub_calls"][0]
    assert call2["kind"] == "rlm" and call2["response"] == "depth2: blue"
    call3 = call2["iterations"][0]["steps"][0]["sub_calls"][0]
    assert call3["kind"] == "llm" and call3["response"] == "blue"  # degraded at max depth
    assert call2["iterations"][0]["depth"] == 2
    assert len(fake_lm.requests_for("sub")) == 1


def test_concurrency_bounds_requests_in_flight(fake_lm):
    fake_lm.default("sub", Reply(text="ok", delay_s=0.2))
    fake_lm.script("root", "```repl\nprint(len(llm_query_batched([str(i) for i in range(24)])))\n```", "FINAL(ok)")
    run = run_engine(fake_lm, limits=Limits(concurrency=4))
    assert run.answer == "ok" and step_stdout(run.doc).strip() == "24"
    assert fake_lm.max_in_flight == 4


def test_timeout_ends_the_run_mid_step_and_leaves_no_repl(fake_lm):
    fake_lm.script("root", "```repl\nimport time\ntime.sleep(60)\n```", "FINAL(unreachable)")
    run = run_engine(fake_lm, limits=Limits(timeout=1, step_timeout=100))
    assert (run.status, run.result.exhausted, run.exit_code) == ("budget_exhausted", "timeout", 3)
    assert run.doc["status"] == "budget_exhausted" and run.doc["exhausted"] == "timeout"
    assert len(fake_lm.requests_for("root")) == 1  # no last call: the time is up
    assert not repl_pids(run.workdir)


def test_timeout_ends_the_run_during_a_slow_lm_call(fake_lm):
    fake_lm.script("root", Reply(text="FINAL(too late)", delay_s=600))
    run = run_engine(fake_lm, limits=Limits(timeout=0.5))
    assert (run.status, run.result.exhausted) == ("budget_exhausted", "timeout")
    assert fake_lm.requests_for("root")[0].status is None  # the call was cancelled, never answered
    assert fake_lm.in_flight == 0


# -- batches ---------------------------------------------------------------------------------------
def test_a_batch_over_the_maximum_is_refused_whole(fake_lm):
    fake_lm.script("root",
                   "```repl\ntry:\n    r = llm_query_batched(['x'] * 300000)\n    print('returned', type(r).__name__, len(r))\n"
                   "except Exception as e:\n    print('raised', type(e).__name__, str(e)[:300])\n"
                   "raw = llm_query_batched.__self__.channel.request('llm_query_batched', {'prompts': ['x'] * 300000})\n"
                   "print('raw', type(raw).__name__, len(raw), raw[:200])\n"
                   "raw = llm_query_batched.__self__.channel.request('rlm_query_batched', {'prompts': ['x'] * 300000})\n"
                   "print('raw', type(raw).__name__, len(raw), raw[:200])\n```",
                   "FINAL(done)")
    fake_lm.default("sub", "ok")
    run = run_engine(fake_lm, limits=Limits(max_sub_calls=10))
    assert run.status == "answered"
    assert fake_lm.requests_for("sub") == []
    lines = step_stdout(run.doc).splitlines()
    assert lines[0].startswith("raised ValueError") and f"{MAX_BATCH:,}" in lines[0], lines
    for line in lines[1:]:
        assert line.startswith("raw str ") and f"{MAX_BATCH:,}" in line and "Error:" in line, line
    assert run.doc["usage"]["sub_calls"] == 0


def test_a_batch_beyond_the_budget_runs_what_it_can_pay(fake_lm):
    fake_lm.script("root",
                   "```repl\nr = llm_query_batched([f'p{i}' for i in range(5000)])\n"
                   "print(len(r), sum(x.startswith('Error:') for x in r))\nprint(r[:10] == [f'echo p{i}' for i in range(10)])\n"
                   "print(r[10])\nr2 = llm_query_batched(['again'] * 3)\nprint(r2[0])\n```",
                   "FINAL(done)")
    fake_lm.default("sub", echo_reply)
    run = run_engine(fake_lm, limits=Limits(max_sub_calls=10))
    assert run.exit_code == 3
    assert len(fake_lm.requests_for("sub")) == 10
    out = step_stdout(run.doc).splitlines()
    assert out[0] == "5000 4990" and out[1] == "True"
    assert out[2].startswith("Error: budget exhausted (sub_calls)") and out[3].startswith("Error: budget")
    assert run.doc["usage"]["sub_calls"] == 10 and run.doc["usage"]["refused_sub_calls"] == 4993


def test_non_string_prompts_are_error_items(fake_lm):
    fake_lm.script("root",
                   "```repl\nreq = llm_query_batched.__self__.channel.request\n"
                   "r = req('llm_query_batched', {'prompts': [1, None, 'ok', ['x']]})\nprint(len(r))\n"
                   "for x in r:\n    print(x[:80])\n"
                   "print(req('llm_query_batched', {'prompts': 'abc'})[:80])\n"
                   "print(req('llm_query_batched', {'prompts': {'a': 1}})[:80])\n"
                   "print(req('llm_query', {'prompt': 5})[:80])\n"
                   "print(req('rlm_query_batched', {'prompts': ['a'], 'contexts': [1]})[0][:80])\n"
                   "print(req('rlm_query_batched', {'prompts': ['a', 'b'], 'contexts': ['c']})[:80])\n```",
                   "FINAL(done)")
    fake_lm.default("sub", echo_reply)
    run = run_engine(fake_lm, limits=Limits(max_depth=0))
    assert run.status == "answered"
    out = step_stdout(run.doc).splitlines()
    assert out[0] == "4"
    assert out[1].startswith("Error:") and out[2].startswith("Error:") and out[4].startswith("Error:")
    assert out[3] == "echo ok"
    assert all(line.startswith("Error:") for line in out[5:]), out
    assert len(fake_lm.requests_for("sub")) == 1


def test_batched_tasks_stay_bounded_by_concurrency():
    """The router never creates one task per prompt: at most ``--concurrency`` workers."""
    from rlm_cli.run.events import EventBus, Usage
    from rlm_cli.run.subcalls import StepRef, SubCallRouter

    peak = 0

    class FakeClient:
        prices: dict = {}

        async def complete(self, model, messages, role="sub", **kwargs):
            nonlocal peak
            peak = max(peak, len(asyncio.all_tasks()))
            await asyncio.sleep(0)
            return LMResult(messages[-1]["content"], Usage(1, 1), 0.0, model)

    class Cfg:
        root_model, sub_model, model_aliases, allowed_models = "openai/root", "openai/sub", {}, ()

    class State:
        cfg, lm, bus = Cfg(), FakeClient(), EventBus([])
        budget = Budget(Limits(max_sub_calls=MAX_BATCH, concurrency=4))
        limits = budget.limits
        root_model, sub_model = "openai/root", "openai/sub"
        child_slots: dict = {}

    async def go():
        router = SubCallRouter(State(), StepRef("r0", 0, 0, 0), None)
        return await router("llm_query_batched", {"prompts": [str(i) for i in range(MAX_BATCH)]})

    out = asyncio.run(go())
    assert out == [str(i) for i in range(MAX_BATCH)]
    assert peak <= 4 + 2


def test_a_huge_sub_lm_reply_is_cut_before_it_reaches_the_code(fake_lm):
    from rlm_cli.lm.replies import MAX_REPLY_CHARS

    fake_lm.default("sub", Reply(text="y" * (MAX_REPLY_CHARS + 50_000)))
    fake_lm.script("root", "```repl\nr = llm_query('q')\n"
                           "print('cut:', len(r) < 200_200, r[200_000:200_005] != 'yyyyy', 'were cut' in r)\n```",
                   "FINAL(done)")
    run = run_engine(fake_lm)
    assert run.status == "answered"
    assert "cut: True True True" in fake_lm.requests_for("root")[1].body["messages"][-1]["content"]
