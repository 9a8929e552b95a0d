"""The REPL's ``search(query)`` on a large ``files``: 100 MB of log lines (about 1.1 M lines) where one
word of the query occurs on every line, against ``grep`` (one regex pass) on the same text.

Target (issue 24, point 3): <= 1 s for a query whose word is on every line (it was 5.5 s when every
matching line cost a Python step). Prints seconds per query (median of 3) and the ratio to grep.
Run: ``.venv/bin/python bench/bench_search.py [--mb 100]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchenv import as_installed  # noqa: E402

from rlm_cli.context import ContextWriter  # noqa: E402
from rlm_cli.repl.child_grep import make_tools  # noqa: E402


def build(mb: int, tmp: Path):
    line = "2026-12-07T10:00:{s:02d} user=u{u} GET /api/v1/items/{i} status={st} request took {ms} ms\n"
    per_file = []
    size = 0
    i = 0
    while size < mb * 1_000_000:
        text = "".join(line.format(s=j % 60, u=(i + j) % 997, i=i + j, st=(404 if (i + j) % 1000 == 7 else 200),
                                   ms=(i * 7 + j) % 900) for j in range(1000))
        per_file.append(text)
        size += len(text)
        i += 1000
    writer = ContextWriter(tmp / "ctx.txt")
    for n in range(0, len(per_file), 50):
        writer.add(f"logs/part{n // 50:03d}.log", "".join(per_file[n:n + 50]))
    loaded = writer.finish()
    spans = {path: (offset, offset + chars) for path, offset, chars in loaded.index()}
    return loaded.read(), spans


def timed(fn, repeat: int = 3) -> float:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=100)
    args = ap.parse_args()
    print(as_installed())
    with tempfile.TemporaryDirectory() as tmp:
        context, spans = build(args.mb, Path(tmp))
        tools = make_tools(context, spans)
        search, grep = tools["search"], tools["grep"]
        lines = context.count("\n")
        print(f"input: {len(context) / 1e6:.0f} MB, {lines:,} lines, {len(spans)} files")
        floor = timed(lambda: grep("request", max_hits=20))
        print(f"grep('request', max_hits=20): {floor * 1000:.0f} ms")
        full = timed(lambda: len(grep("status=404", max_hits=1_000_000)), 1)
        print(f"grep('status=404') over all lines: {full * 1000:.0f} ms")
        for query in ("request", "which request took 123 ms", "user u42 status 404", "items 7781"):
            took = timed(lambda q=query: search(q))
            print(f"search({query!r}): {took:.2f} s ({took / full:.1f} x a full grep)  target <= 1 s")


if __name__ == "__main__":
    main()
