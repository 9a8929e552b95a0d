"""Issue #10, class 5: model code may call only the models the user chose or allowed, and under
``--max-cost`` only priced ones. Through the real CLI and the scripted server."""

from __future__ import annotations

from helpers import last_trajectory, rlm_env, run_rlm, source_file, step_stdout


def test_unnamed_model_is_an_error_string_with_no_request_and_no_sub_call(scripted_server, tmp_path):
    s = scripted_server
    s.script("root",
             "```repl\nout = [llm_query('x', model='openai/anything') for _ in range(40)]\n"
             "out += llm_query_batched(['a', 'b'], model='openai/other')\n"
             "print(len(out), sum(o.startswith('Error:') for o in out))\nprint(out[0])\nprint(out[-1])\n```",
             "FINAL(done)")
    s.default("*", "should never be called")
    home = tmp_path / "home"
    p = run_rlm(["ask", source_file(tmp_path), "q?"], rlm_env(s, home))
    assert p.returncode == 0, p.stderr
    assert [r.model for r in s.chat_requests()] == ["root", "root"]  # no sub-call reached any server
    doc = last_trajectory(home)
    out = step_stdout(doc).splitlines()
    assert out[0] == "42 42"
    assert "'openai/anything' is not allowed" in out[1] and "--allow-model" in out[1]
    assert "openai/root" in out[1] and "openai/sub" in out[1]  # what is allowed is stated
    assert "'openai/other' is not allowed" in out[2]
    assert doc["usage"]["sub_calls"] == 0 and doc["usage"]["sub"]["calls"] == 0
    assert doc["usage"]["refused_sub_calls"] == 0


def test_allow_model_env_and_aliases(scripted_server, tmp_path):
    s = scripted_server
    s.script("root",
             "```repl\nfor m in ['openai/extra2', 'openai/extra3', 'fast', 'openai/fastm', 'openai/sub', None]:\n"
             "    print(llm_query('hi', model=m))\n```",
             "FINAL(done)")
    for name in ("extra2", "extra3", "fastm", "sub"):
        s.default(name, lambda body, name=name: f"{name} says hi")
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('[aliases]\nfast = "openai/fastm"\n')
    p = run_rlm(["ask", source_file(tmp_path), "q?"], rlm_env(s, home, RLM_ALLOW_MODELS="openai/extra2, openai/extra3"))
    assert p.returncode == 0, p.stderr
    out = step_stdout(last_trajectory(home)).splitlines()
    assert out == ["extra2 says hi", "extra3 says hi", "fastm says hi", "fastm says hi", "sub says hi", "sub says hi"]


def test_allow_model_flag_repeatable_and_replaces_env(scripted_server, tmp_path):
    s = scripted_server
    s.script("root",
             "```repl\nfor m in ['openai/extra', 'openai/extra3', 'openai/extra2', 'openai/root']:\n"
             "    print(llm_query('hi', model=m)[:60])\n```",
             "root says hi", "FINAL(done)")
    for name in ("extra", "extra2", "extra3"):
        s.default(name, lambda body, name=name: f"{name} says hi")
    home = tmp_path / "home"
    env = rlm_env(s, home, RLM_ALLOW_MODELS="openai/extra2")
    p = run_rlm(["ask", source_file(tmp_path), "q?", "--allow-model", "openai/extra", "--allow-model", "openai/extra3"], env)
    assert p.returncode == 0, p.stderr
    out = step_stdout(last_trajectory(home)).splitlines()
    assert out[:2] == ["extra says hi", "extra3 says hi"]
    assert out[2].startswith("Error: model 'openai/extra2' is not allowed")
    assert out[3] == "root says hi"  # the root model may be a sub-LM too
    assert s.requests_for("extra2") == []


def test_hostile_model_names_are_bounded_and_refused(scripted_server, tmp_path):
    s = scripted_server
    s.script("root",
             "```repl\nfor m in ['x' * 100000 + '\\x1b[2J', 123, ['openai/sub'], {'a': 1}]:\n"
             "    r = llm_query_batched.__self__.channel.request('llm_query', {'prompt': 'p', 'model': m})\n"
             "    print(len(r), repr(r[:60]))\n```",
             "FINAL(done)")
    s.default("*", "should never be called")
    home = tmp_path / "home"
    p = run_rlm(["ask", source_file(tmp_path), "q?"], rlm_env(s, home))
    assert p.returncode == 0, p.stderr
    assert [r.model for r in s.chat_requests()] == ["root", "root"]
    lines = step_stdout(last_trajectory(home)).splitlines()
    assert len(lines) == 4
    for line in lines:
        n, text = line.split(" ", 1)
        assert int(n) < 600 and text[1:].startswith("Error: ")
    assert "\x1b" not in step_stdout(last_trajectory(home))


def test_max_cost_refuses_an_unpriced_root_or_sub_model_at_start(scripted_server, tmp_path):
    s = scripted_server
    s.default("*", "FINAL(x)")
    home = tmp_path / "home"
    p = run_rlm(["ask", source_file(tmp_path), "q?", "--max-cost", "1"], rlm_env(s, home))
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "openai/root" in lines[0] and "--price" in lines[0], p.stderr
    p = run_rlm(["ask", source_file(tmp_path), "q?", "--max-cost", "1", "--price", "openai/root=1/2"], rlm_env(s, home))
    assert p.returncode == 2
    assert "openai/sub" in p.stderr and "--price" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert s.chat_requests() == []  # refused before any LM call
    p = run_rlm(["ask", source_file(tmp_path), "q?", "--max-cost", "1", "--price", "openai/root=1/2",
                 "--price", "openai/sub=0/0"], rlm_env(s, home))
    assert p.returncode == 0, p.stderr
    assert p.stdout == "x\n"


def test_max_cost_refuses_an_unpriced_allowed_model_at_call_time(scripted_server, tmp_path):
    s = scripted_server
    s.script("root",
             "```repl\nprint(llm_query('hi', model='openai/extra'))\n"
             "print(llm_query('hi', model='openai/gpt-4o-mini'))\n"
             "print(llm_query('hi', model='openai/priced'))\n```",
             "FINAL(done)")
    for name in ("extra", "gpt-4o-mini", "priced"):
        s.default(name, lambda body, name=name: f"{name} says hi")
    home = tmp_path / "home"
    p = run_rlm(["ask", source_file(tmp_path), "q?", "--max-cost", "1", "--price", "openai/root=0/0",
                 "--price", "openai/sub=0/0", "--allow-model", "openai/extra", "--allow-model",
                 "openai/gpt-4o-mini", "--allow-model", "openai/priced", "--price", "openai/priced=1/1"],
                rlm_env(s, home))
    assert p.returncode == 0, p.stderr
    doc = last_trajectory(home)
    out = step_stdout(doc).splitlines()
    assert out[0].startswith("Error:") and "openai/extra" in out[0] and "--price" in out[0]
    assert out[1:] == ["gpt-4o-mini says hi", "priced says hi"]  # litellm's map prices gpt-4o-mini
    assert s.requests_for("extra") == []
    assert doc["usage"]["sub_calls"] == 2


def test_allow_model_rejects_unusable_names(tmp_path):
    home = tmp_path / "home"
    for bad in ("", " ", "a b", "x\x1b[2J"):
        p = run_rlm(["ask", source_file(tmp_path), "q?", "-m", "openai/root", "--allow-model", bad],
                    rlm_env(None, home))
        assert p.returncode == 2, (bad, p.stderr)
        assert "--allow-model" in p.stderr and "\x1b" not in p.stderr
