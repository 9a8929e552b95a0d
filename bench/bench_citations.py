"""Answers that cite evidence: the REPL's ``grep`` and ``search`` over a 100 MB ``files``, and the
answer's reference check on hostile answers. Prints numbers; no target is asserted (the machine is shared).

- ``grep``: 100 MB over 2,000 files of log-like lines, laid out as the REPL child holds them (one
  ``context`` str and file spans, ``rlm_cli/repl/child_grep.py``), for a rare literal, a rare regex,
  a literal on every 1,000th line (capped by ``max_hits``) and a pattern that never matches; next to
  a plain ``re.finditer`` over the whole context (the floor) and the "split every file into lines"
  approach the function avoids.
- ``search``: the same files, for a query whose words are rare, one with a word on every line (the
  worst case: every line is scored), and one matching nothing.
- ``check_answer``: 2 MB answers built to defeat a naive scanner (a run of path characters, colon
  chains, backticks), a 64 MB answer (scanned up to its bound), and 500 distinct valid references
  against 100,000 loaded files.

Run: ``.venv/bin/python bench/bench_citations.py``.
"""

from __future__ import annotations

import os
import re
import time

from rlm_cli.repl.child_grep import make_grep, make_search
from rlm_cli.run.citations import check_answer

LINE = "2026-11-21 12:00:00 INFO worker-{n} heartbeat ok; queue depth nominal; nothing to report\n"


def build(total_chars: int = 100_000_000, n_files: int = 2_000) -> tuple[str, dict]:
    per_file = total_chars // n_files
    parts, spans, pos, k = [], {}, 0, 0
    for i in range(n_files):
        header = f"==> logs/day{i:04d}.log <==\n"
        lines = []
        size = 0
        while size < per_file:
            line = LINE.format(n=k % 97) if k % 1000 else "2026-11-21 12:00:00 ERROR worker disk full\n"
            if k == 1_000_003:
                line = "2026-11-21 12:00:00 FATAL launch code 7391-ALPHA\n"
            lines.append(line)
            size += len(line)
            k += 1
        body = "".join(lines)
        parts.append(header)
        pos += len(header)
        spans[f"logs/day{i:04d}.log"] = (pos, pos + len(body))
        parts.append(body)
        pos += len(body)
    return "".join(parts), spans


def timed(label: str, fn, repeat: int = 3):
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    print(f"  {label:<58} {best * 1000:9.1f} ms")
    return result


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.2f}")
    context, spans = build()
    print(f"grep over {len(context) / 1e6:.0f} MB, {len(spans):,} files, {context.count(chr(10)):,} lines")
    grep = make_grep(context, spans)
    hits = timed("grep('launch code') (1 hit)", lambda: grep("launch code"))
    print(f"    -> {hits}")
    timed("grep(r'FATAL .* \\d{4}-[A-Z]+') (1 hit)", lambda: grep(r"FATAL .* \d{4}-[A-Z]+"))
    hits = timed("grep('ERROR', max_hits=10**9) (every 1,000th line)", lambda: grep("ERROR", max_hits=10**9))
    print(f"    -> {len(hits):,} hits")
    timed("grep('ERROR') (stops at 200 hits)", lambda: grep("ERROR"))
    timed("grep('no such text') (no hit)", lambda: grep("no such text"))
    rx = re.compile("launch code")
    timed("floor: re.finditer over the whole context", lambda: list(rx.finditer(context)), 3)
    timed("split every file into lines, then search each", lambda: [
        (p, n) for p, (s, e) in spans.items() for n, line in enumerate(context[s:e].splitlines(), 1)
        if rx.search(line)], 1)
    search = make_search(context, spans)
    hits = timed("search('What is the launch code?') (rare words)", lambda: search("What is the launch code?"), 1)
    print(f"    -> first {hits[0]}")
    timed("search('worker disk full') (a word on every line)", lambda: search("worker disk full"), 1)
    timed("search('no such words') (no hit)", lambda: search("no such words"), 1)

    files = [(f"pkg{i}/mod/file{i}.py", 200) for i in range(100_000)]
    print("check_answer")
    hostile = {
        "2 MB run of path characters": "a" * 2_000_000,
        "2 MB of 'x.py:1:' chains": "x.py:1:" * 300_000,
        "2 MB of ':1'": ":1" * 1_000_000,
        "backticks and colons": ("`" + "x" * 300 + "`" * 1000 + "a.py:" * 100_000) * 3,
        "64 MB answer (scanned to 1 MB)": "see pkg1/mod/file1.py:3 and " * 2_300_000,
    }
    for label, answer in hostile.items():
        report = timed(label, lambda a=answer: check_answer(a, files[:10]), 1)
        print(f"    -> checked {report['checked']}, truncated {report['truncated']}")
    answer = " ".join(f"file{i}.py:{i % 200 + 1}" for i in range(500))
    report = timed("500 suffix refs against 100,000 files (index built)", lambda: check_answer(answer, files), 1)
    print(f"    -> valid {len(report['valid'])}, invalid {len(report['invalid'])}")


if __name__ == "__main__":
    main()
