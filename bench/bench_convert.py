"""Conversion throughput: PDF and HTML to text, in MB of input per second.

What it measures
    1. A generated PDF (pypdf, :data:`PDF_PAGES` pages of about 3 kB of text each, Helvetica) and
       a generated HTML page (:data:`HTML_MB` MB: sections with headings, paragraphs, lists,
       tables, links, scripts, styles and navigation), each converted:
       - in process (``rlm_cli.loader.convert.convert_file``): the converter alone,
       - through the worker process as the loader runs it (``ConverterProcess``; the first file
         pays the worker's start, which is printed on its own).
       Median of :data:`ROUNDS` runs, MB/s = input bytes / wall seconds, and characters out.
    2. ``rlm ls`` on a directory of both documents (the whole command, as a user runs it).

Targets
    none: prints numbers (pypdf is pure Python; PDF text extraction is the slow one).
Run: ``.venv/bin/python bench/bench_convert.py``
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

PDF_PAGES = 200
HTML_MB = 4
ROUNDS = 3
_WORDS = ["launch", "orbit", "payload", "telemetry", "booster", "stage", "fairing", "guidance", "thrust", "valve", "pressure", "sequence", "vehicle", "range", "safety", "recovery", "engine", "ignition", "abort", "window", "weather"]


def _sentence(i: int) -> str:
    return " ".join(_WORDS[(i * 7 + k * 3) % len(_WORDS)] for k in range(12)) + f" {i}."


def make_pdf(path: Path) -> None:
    from convert_support import make_pdf as make

    pages = [" ".join(_sentence(p * 40 + s) for s in range(40)) for p in range(PDF_PAGES)]
    make(path, pages)


def make_html(path: Path) -> None:
    parts = ["<!DOCTYPE html><html><head><title>Bench</title><style>p{margin:0}</style></head><body>",
             "<nav><ul>" + "".join(f"<li><a href='/{i}'>nav {i}</a></li>" for i in range(30)) + "</ul></nav>"]
    size, i = 0, 0
    while size < HTML_MB * 1_000_000:
        block = (f"<section><h2>Section {i}</h2><p>{_sentence(i)} <a href='#x'>{_sentence(i + 1)}</a></p>"
                 f"<ul><li>{_sentence(i + 2)}</li><li>{_sentence(i + 3)}</li></ul>"
                 f"<table><tr><th>k</th><th>v</th></tr><tr><td>{i}</td><td>{_sentence(i + 4)}</td></tr></table>"
                 f"<script>var x{i} = {i};</script></section>")
        parts.append(block)
        size += len(block)
        i += 1
    parts.append("</body></html>")
    path.write_text("".join(parts), encoding="utf-8")


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    import benchenv

    print(benchenv.as_installed())
    from rlm_cli.loader.convert import convert_file
    from rlm_cli.loader.convert.worker import ConverterProcess

    print(f"Conversion benchmark (median of {ROUNDS} runs), machine: {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="rlm-bench-convert-") as tmp:
        d = Path(tmp) / "docs"
        d.mkdir()
        pdf, html = d / "report.pdf", d / "page.html"
        make_pdf(pdf)
        make_html(html)
        process = ConverterProcess()
        first, _ = _timed(lambda: process.convert("html", str(html), 10**9))
        for kind, path in (("pdf", pdf), ("html", html)):
            size = path.stat().st_size
            for where, run in (("in process", lambda k=kind, p=path: convert_file(k, str(p), 10**9)),
                               ("worker", lambda k=kind, p=path: process.convert(k, str(p), 10**9))):
                runs = [_timed(run) for _ in range(ROUNDS)]
                wall = statistics.median(t for t, _ in runs)
                chars = len(runs[0][1].text)
                print(f"  {kind.upper():4} {where:10}  {size / 1e6:6.2f} MB in {wall:6.2f} s = "
                      f"{size / 1e6 / wall:6.2f} MB/s   ({chars:,} chars out; "
                      f"runs: {', '.join(f'{t:.2f}' for t, _ in runs)})")
        process.close()
        print(f"  worker start + first HTML conversion: {first:.2f} s")
        rlm = str(Path(sys.executable).parent / "rlm")
        runs = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            subprocess.run([rlm, "ls", str(d), "--max-file-size", "100MB"], check=True, capture_output=True,
                           env={**os.environ, "RLM_CONVERT_CACHE_MAX": "0"})  # conversion, not the cache
            runs.append(time.perf_counter() - start)
        total = pdf.stat().st_size + html.stat().st_size
        wall = statistics.median(runs)
        print(f"  rlm ls on both ({total / 1e6:.2f} MB)   {wall:6.2f} s = {total / 1e6 / wall:6.2f} MB/s")


if __name__ == "__main__":
    main()
