"""The bench's scorers against hand-computed cases (rlm_cli/bench/scoring.py)."""

from __future__ import annotations

import pytest

from rlm_cli.bench.scoring import (
    f1,
    last_number,
    parse_pairs,
    score_label,
    score_name,
    score_numeric,
    score_pairs,
    score_token,
)


def test_token_exact_and_chatty():
    assert score_token("4821-7730", "4821-7730") == 1.0
    assert score_token("4821-7730", "The access code is **4821-7730**.") == 1.0
    assert score_token("4821-7730", "14821-7730") == 0.0  # inside a longer number
    assert score_token("4821-7730", "4821-77301") == 0.0
    assert score_token("4821-7730", "no idea") == 0.0


def test_token_with_a_decoy_is_wrong():
    assert score_token("4821-7730", "either 4821-7730 or 1111-2222", decoys=("1111-2222",)) == 0.0
    assert score_token("4821-7730", "4821-7730", decoys=("1111-2222",)) == 1.0


def test_numeric_is_075_to_the_distance():
    assert score_numeric(10, "10") == 1.0
    assert score_numeric(10, "There are 12 records.") == pytest.approx(0.75 ** 2)
    assert score_numeric(10, "I counted 3 labels, the answer: 7") == pytest.approx(0.75 ** 3)
    assert score_numeric(1234, "1,234") == 1.0
    assert score_numeric(5, "none") == 0.0


def test_last_number():
    assert last_number("a 1 b 2.5 c") == 2.5
    assert last_number("nothing") is None


def test_label_exact_or_single_choice():
    choices = ("billing", "shipping", "refund")
    assert score_label("billing", "Billing.", choices) == 1.0
    assert score_label("billing", "The most frequent label is billing", choices) == 1.0
    assert score_label("billing", "billing or refund", choices) == 0.0  # hedging
    assert score_label("billing", "shipping", choices) == 0.0


def test_pairs_parse_and_f1():
    assert parse_pairs("(u12, u7), (u3, u4)") == {("u12", "u7"), ("u3", "u4")}
    assert parse_pairs("u1 and u2; u5 - u3") == {("u1", "u2"), ("u3", "u5")}
    assert f1(set(), set()) == 1.0
    # 2 of 3 predicted are right, 2 of 4 expected found: P = 2/3, R = 1/2, F1 = 4/7
    expected = [["u1", "u2"], ["u1", "u3"], ["u2", "u3"], ["u4", "u5"]]
    assert score_pairs(expected, "(u2, u1), (u1, u3), (u9, u8)") == pytest.approx(4 / 7)
    assert score_pairs(expected, "none") == 0.0


def test_name_paths_and_names():
    assert score_name("src/app/util.py", "It is defined in `repo/src/app/util.py`.") == 1.0
    assert score_name("src/app/util.py", "src/app/util.pyc") == 0.0
    assert score_name("parse_row", "The caller is parse_row().") == 1.0
    assert score_name("parse_row", "parse_rows") == 0.0
    assert score_name("parse_row", "parse_row or load_row", choices=("parse_row", "load_row")) == 0.0
