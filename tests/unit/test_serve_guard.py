"""``rlm serve``'s browser guard (Host, Origin), option parsing, the spending meter and the answer's
shape (JSON checks, stop, max_tokens), in process."""

from __future__ import annotations

import pytest

from rlm_cli.errors import UsageError
from rlm_cli.serve.answer import check_json, shape
from rlm_cli.serve.config import ServeConfig, network_options, normal_host, parse_total_cost
from rlm_cli.serve.errors import ApiError
from rlm_cli.serve.guard import host_allowed, origin_allowed
from rlm_cli.serve.protocol import json_depth, param_name
from rlm_cli.serve.spending import Spending


def cfg(**kw) -> ServeConfig:
    return ServeConfig(sources=[], load_options=None, settings=None, limits=None, **kw)


@pytest.mark.parametrize("host, ok", [
    (None, True), ("127.0.0.1:8000", True), ("[::1]:8000", True), ("localhost", True), ("LocalHost.:1", True),
    ("app.localhost", True), ("10.1.2.3", True), ("evil.example", False), ("evil.example:8000", False),
    ("localhost.evil.example", False), ("127.0.0.1.nip.io", False), ("", False), ("rlm.internal:80", True),
])
def test_host_rule(host, ok):
    assert host_allowed(host, cfg(allow_hosts=("rlm.internal",))) is ok


def test_origin_rule():
    c = cfg(cors_origins=("http://app.example:3000",))
    assert origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000", c)
    assert origin_allowed("http://app.example:3000/", "127.0.0.1:8000", c)
    for foreign in ("http://evil.example", "null", "http://127.0.0.1:8001", "http://app.example:3001"):
        assert not origin_allowed(foreign, "127.0.0.1:8000", c), foreign
    assert not origin_allowed("http://127.0.0.1:8000", None, c)


def test_option_parsing():
    assert parse_total_cost("5") == (5.0, None) and parse_total_cost("0.5/h") == (0.5, 3600.0)
    assert parse_total_cost("$2/day") == (2.0, 86400.0) and parse_total_cost(None) == (None, None)
    for bad in ("five", "5/week", "-1", "0", "nan", "inf"):
        with pytest.raises(UsageError):
            parse_total_cost(bad)
    assert normal_host("[::1]:80") == "::1" and normal_host("A.Example.:8080") == "a.example"
    opts = network_options(["Rlm.Internal:80"], ["HTTP://App.Example:3000/"], 8, 1, 2, 3, "1/h")
    assert opts["allow_hosts"] == ("rlm.internal",) and opts["cors_origins"] == ("http://app.example:3000",)
    for bad_origin in ("*", "app.example", "http://x/path", "ftp://x"):
        with pytest.raises(UsageError):
            network_options(None, [bad_origin], 8, 1, 2, 3, None)
    with pytest.raises(UsageError):
        network_options(None, None, 8, 0, 2, 3, None)


def test_spending_reserves_settles_and_rolls():
    now = [0.0]
    s = Spending(1.0, 3600.0, clock=lambda: now[0])
    assert s.reserve(0.4) == 0.4 and s.reserve(None) == pytest.approx(0.6)
    with pytest.raises(ApiError) as err:
        s.reserve(0.1)
    assert err.value.status == 429 and "reserved by 2 running" in err.value.message
    s.settle(0.4, 0.3)
    s.settle(0.6, 0.7)
    with pytest.raises(ApiError) as err:
        s.reserve(None)
    assert "$1 per hour" in err.value.message and "retry in about" in err.value.message
    now[0] = 3601.0  # the window rolled past both runs
    assert s.reserve(None) == pytest.approx(1.0)
    assert Spending(None).reserve(0.2) == 0.2 and Spending(None).reserve(None) is None


def test_answer_shape_and_json_checks():
    assert shape("alpha STOP beta", ["STOP"], None) == ("alpha ", False)
    text, cut = shape("word " * 500, [], 10)
    assert cut and len(text) < 100
    assert shape("short", [], 10) == ("short", False)
    schema = {"type": "json_schema", "schema": {"type": "object", "required": ["a"],
                                                "properties": {"a": {"type": "integer"}}}}
    assert check_json('{"a": 1}', schema) == ('{"a": 1}', None)
    assert check_json('```json\n{"a": 1}\n```', schema)[1] is None
    assert "a" in check_json('{"a": "x"}', schema)[1]
    assert check_json("[1]", {"type": "json_object"})[1] == "not a JSON object"
    assert check_json("nope", {"type": "json_object"})[1].startswith("not valid JSON")
    assert "invalid" in check_json("{}", {"type": "json_schema", "schema": {"type": 5}})[1]


def test_depth_and_param_names():
    deep: list = []
    cur = deep
    for _ in range(200):
        cur.append([])
        cur = cur[0]
    assert json_depth(deep) > 64 and json_depth({"a": [1, {"b": 2}]}) == 3 and json_depth(5) == 0
    assert param_name(("messages", 0, "content", "str")) == "messages[0].content"
    assert param_name(("messages", 1, "content", "list[TextPart]", 0, "type")) == "messages[1].content[0].type"
