"""Issue #10, class 5 through the real CLI and the scripted server: which models model code may call
as settings choose them (``RLM_ALLOW_MODELS``, ``--allow-model``, config aliases), unusable names
refused, and under ``--max-cost`` an unpriced root or sub-model refused before the run. The call-time
rules (unnamed, hostile and unpriced models) are tested in process in tests/unit/test_engine_models.py."""

from __future__ import annotations

from helpers import last_trajectory, source_file, step_stdout


def test_allow_model_env_and_aliases(cli, scripted_server, tmp_path):
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
    p = cli("ask", source_file(tmp_path), "q?", RLM_ALLOW_MODELS="openai/extra2, openai/extra3")
    assert p.returncode == 0, p.stderr
    out = step_stdout(last_trajectory(home)).splitlines()
    assert out == ["extra2 says hi", "extra3 says hi", "fastm says hi", "fastm says hi", "sub says hi", "sub says hi"]


def test_allow_model_flag_repeatable_and_replaces_env(cli, scripted_server, tmp_path):
    s = scripted_server
    s.script("root",
             "```repl\nfor m in ['openai/extra', 'openai/extra3', 'openai/extra2', 'openai/root']:\n"
             "    print(llm_query('hi', model=m)[:60])\n```",
             "root says hi", "FINAL(done)")
    for name in ("extra", "extra2", "extra3"):
        s.default(name, lambda body, name=name: f"{name} says hi")
    home = tmp_path / "home"
    p = cli("ask", source_file(tmp_path), "q?", "--allow-model", "openai/extra", "--allow-model", "openai/extra3",
            RLM_ALLOW_MODELS="openai/extra2")
    assert p.returncode == 0, p.stderr
    out = step_stdout(last_trajectory(home)).splitlines()
    assert out[:2] == ["extra says hi", "extra3 says hi"]
    assert out[2].startswith("Error: model 'openai/extra2' is not allowed")
    assert out[3] == "root says hi"  # the root model may be a sub-LM too
    assert s.requests_for("extra2") == []


def test_max_cost_refuses_an_unpriced_root_or_sub_model_at_start(cli, scripted_server, tmp_path):
    s = scripted_server
    s.default("*", "FINAL(x)")
    p = cli("ask", source_file(tmp_path), "q?", "--max-cost", "1")
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "openai/root" in lines[0] and "--price" in lines[0], p.stderr
    p = cli("ask", source_file(tmp_path), "q?", "--max-cost", "1", "--price", "openai/root=1/2")
    assert p.returncode == 2
    assert "openai/sub" in p.stderr and "--price" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert s.chat_requests() == []  # refused before any LM call
    p = cli("ask", source_file(tmp_path), "q?", "--max-cost", "1", "--price", "openai/root=1/2", "--price", "openai/sub=0/0")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "x\n"


def test_allow_model_rejects_unusable_names(cli, tmp_path):
    for bad in ("", " ", "a b", "x\x1b[2J"):
        p = cli("ask", source_file(tmp_path), "q?", "-m", "openai/root", "--allow-model", bad)
        assert p.returncode == 2, (bad, p.stderr)
        assert "--allow-model" in p.stderr and "\x1b" not in p.stderr
