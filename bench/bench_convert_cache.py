"""The cache of converted documents: ``rlm ls`` of a source tree with documents, first vs second run.

What it measures
    A generated tree: :data:`SOURCE_FILES` source files (about 4 kB each), :data:`PDFS` PDFs of
    :data:`PDF_PAGES` pages (pypdf, about 3 kB of text a page), :data:`HTMLS` HTML pages (about
    :data:`HTML_KB` kB each) and as many HTML templates (text, never converted). ``rlm ls`` on it,
    the whole command as a user runs it, with a fresh ``RLM_HOME``:
      - cache off (``RLM_CONVERT_CACHE_MAX=0``): every document converted, as before the cache;
      - first run: an empty cache (converts and stores);
      - second run: the same tree again (every document from the cache, no worker started).
    Median of :data:`ROUNDS` runs each (the first run empties the cache before each round); the
    ratios are against the cache-off time and against reading the same files with ``cat``.

Targets
    issue 24 point 2: a second ``rlm ls`` costs no conversion (second/first well under 1).
Run: ``nice .venv/bin/python bench/bench_convert_cache.py``
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

SOURCE_FILES = 2000
PDFS = 12
PDF_PAGES = 20
HTMLS = 12
HTML_KB = 200
ROUNDS = 3
_WORDS = ["cache", "entry", "header", "digest", "payload", "convert", "worker", "page", "index", "bound"]


def _sentence(i: int) -> str:
    return " ".join(_WORDS[(i * 7 + k * 3) % len(_WORDS)] for k in range(12)) + f" {i}."


def make_tree(root: Path) -> None:
    """The tree described in the module doc."""
    from convert_support import make_pdf

    for i in range(SOURCE_FILES):
        sub = root / "src" / f"pkg{i % 40}"
        sub.mkdir(parents=True, exist_ok=True)
        body = "".join(f"def f{i}_{k}(x):\n    return x + {k}  # {_sentence(k)}\n" for k in range(40))
        (sub / f"mod{i}.py").write_text(body[:4000])
    docs = root / "docs"
    docs.mkdir()
    for i in range(PDFS):
        make_pdf(docs / f"manual{i}.pdf", [" ".join(_sentence(p * 40 + s + i) for s in range(40))
                                           for p in range(PDF_PAGES)])
    for i in range(HTMLS):
        parts, size, j = ["<!DOCTYPE html><html><head><title>t</title></head><body>"], 0, 0
        while size < HTML_KB * 1000:
            block = f"<section><h2>S{j}</h2><p>{_sentence(j + i)}</p><ul><li>{_sentence(j + 1)}</li></ul></section>"
            parts.append(block)
            size += len(block)
            j += 1
        (docs / f"page{i}.html").write_text("".join(parts) + "</body></html>")
        (docs / f"template{i}.html").write_text("{% extends 'base.html' %}<html><p>{{ x }}</p></html>\n")


def _run(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    import benchenv

    print(benchenv.as_installed())
    print(f"Convert cache benchmark (median of {ROUNDS} runs), machine: {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    rlm = str(Path(sys.executable).parent / "rlm")
    with tempfile.TemporaryDirectory(prefix="rlm-bench-convert-cache-") as tmp:
        tree, home = Path(tmp) / "tree", Path(tmp) / "home"
        make_tree(tree)
        files = [str(p) for p in tree.rglob("*") if p.is_file()]
        total = sum(os.path.getsize(p) for p in files)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RLM_")}
        env["RLM_HOME"] = str(home)
        cmd = [rlm, "ls", str(tree)]
        cat = [_run(["cat", *files], env) for _ in range(ROUNDS)]
        off = [_run(cmd, {**env, "RLM_CONVERT_CACHE_MAX": "0"}) for _ in range(ROUNDS)]
        first, second = [], []
        for _ in range(ROUNDS):
            shutil.rmtree(home / "cache", ignore_errors=True)
            first.append(_run(cmd, env))
            second.append(_run(cmd, env))
        cached = sum(p.stat().st_size for p in (home / "cache" / "convert").glob("*.txt"))
        out_first = subprocess.run(cmd, capture_output=True, env={**env, "RLM_CONVERT_CACHE_MAX": "0"}).stdout
        again = subprocess.run(cmd, capture_output=True, env=env).stdout
        m = {name: statistics.median(runs) for name, runs in
             (("cat", cat), ("off", off), ("first", first), ("second", second))}
        print(f"  tree: {len(files):,} files, {total / 1e6:.1f} MB ({PDFS} PDFs x {PDF_PAGES} pages, "
              f"{HTMLS} HTML pages of {HTML_KB} kB, {HTMLS} templates); cache holds {cached / 1e6:.2f} MB")
        for name, label in (("cat", "cat of every file"), ("off", "rlm ls, cache off"),
                            ("first", "rlm ls, first run (empty cache)"), ("second", "rlm ls, second run")):
            runs = dict(cat=cat, off=off, first=first, second=second)[name]
            print(f"  {label:34} {m[name]:6.2f} s   {m[name] / m['off']:5.2f}x cache off   "
                  f"(runs: {', '.join(f'{t:.2f}' for t in runs)})")
        print(f"  second / first: {m['second'] / m['first']:.2f}x;   output identical: {out_first == again}")


if __name__ == "__main__":
    main()
