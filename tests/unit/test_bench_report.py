"""The bench's means, JSON document and table (rlm_cli/bench/report.py), and the HTML chart."""

from __future__ import annotations

import io

from rlm_cli.bench.html import chart_svg, render_report
from rlm_cli.bench.report import bench_doc, print_table, summarise
from rlm_cli.bench.runner import TaskResult


def result(system: str, score: float, cost: float | None, length: int = 8000, status: str = "answered") -> TaskResult:
    return TaskResult(task_id=f"niah-{length}-0", suite="niah", length=length, index=0, system=system, score=score,
                      status=status, answer="x", expected="y", cost_usd=cost, input_tokens=100, output_tokens=10,
                      duration_s=2.0, sub_calls=3, trajectory="/t.json")


def test_summarise_means_and_unpriced_cost():
    s = summarise([result("rlm", 1.0, 0.02), result("rlm", 0.5, 0.04), result("rlm", 0.0, 0.0, status="error")])
    assert (s["tasks"], s["accuracy"], s["cost_usd"], s["sub_calls"], s["failed"]) == (3, 0.5, 0.02, 3.0, 1)
    assert summarise([result("rlm", 1.0, 0.02), result("rlm", 1.0, None)])["cost_usd"] is None
    assert summarise([])["accuracy"] is None


def test_doc_groups_and_plain_table():
    rows = [result("rlm", 1.0, None), result("base", 0.0, None), result("rlm", 0.75, None, length=64000)]
    doc = bench_doc(rows, systems=["rlm", "base"], meta={"seed": 1}, interrupted=True)
    assert doc["status"] == "interrupted" and doc["systems"]["rlm"]["accuracy"] == 0.875
    assert [(g["length"], g["system"]) for g in doc["groups"]] == [(8000, "rlm"), (8000, "base"), (64000, "rlm")]
    out = io.StringIO()
    print_table(doc, out, rich=False)
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:5] == ["suite", "length", "system", "n", "accuracy"]
    assert lines[1].split()[:5] == ["niah", "8k", "rlm", "1", "100.0%"]
    assert lines[3].split()[:5] == ["niah", "64k", "rlm", "1", "75.0%"]
    assert all(line == line.rstrip() for line in lines) and "\x1b" not in out.getvalue()  # plain text, no colour


def test_chart_has_one_line_per_system_with_two_lengths():
    rows = [result("rlm", 1.0, None), result("rlm", 0.5, None, length=64000), result("base", 0.0, None)]
    doc = bench_doc(rows, systems=["rlm", "base"], meta={}, interrupted=False)
    svg = chart_svg("niah", doc["groups"], ["rlm", "base"])
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 3  # base has a single point: no line
    assert render_report(doc).startswith("<!DOCTYPE html>")
