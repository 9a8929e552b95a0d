"""Remote sources benchmark: URL download throughput and git clone vs. cache reuse, through ``rlm ls``.

What it measures
    ``rlm ls URL`` against a stdlib HTTP server on loopback (in this process) serving a text file of
    ``--mb`` MB: the wall time of the whole command and the download rate it implies (MB/s, the
    command's start-up included), next to ``rlm ls FILE`` on the same file already on disk (what the
    load costs without the download). Then ``rlm ls file://REPO`` on a bare repository of
    ``--files`` small files, made with git: the first run (shallow fetch and checkout) and the second
    (``git ls-remote``, then the cached checkout), in a fresh ``RLM_HOME``.

Targets
    download adds little over the local load on loopback (rate well above 100 MB/s); the cached run
    well under the cloning one.

It runs 3 times and prints each run and the median. It prints numbers and never asserts timings.
Run: ``.venv/bin/python bench/bench_remote.py`` (``--runs N``, ``--mb N``, ``--files N``).
"""

from __future__ import annotations

import argparse
import http.server
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

RLM = str(Path(sys.executable).with_name("rlm"))


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([RLM, *args], env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"rlm {' '.join(args)} failed: {proc.stderr.strip()}")
    return took


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = type("H", (http.server.SimpleHTTPRequestHandler,),
                   {"log_message": lambda *a: None,
                    "__init__": lambda self, *a, **k: http.server.SimpleHTTPRequestHandler.__init__(
                        self, *a, directory=str(directory), **k)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def make_repo(tmp: Path, files: int) -> Path:
    work, bare = tmp / "work", tmp / "repo.git"
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@b"}
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True, env=env)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True, env=env)
    for i in range(files):
        d = work / f"pkg{i % 50}"
        d.mkdir(exist_ok=True)
        (d / f"mod{i}.py").write_text(f"def f{i}(x):\n    return x + {i}\n" * 20)
    subprocess.run(["git", "-C", str(work), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(work), "commit", "-qm", "bench"], check=True, env=env)
    subprocess.run(["git", "-C", str(work), "push", "-q", str(bare), "main"], check=True, env=env)
    return bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--files", type=int, default=2000)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import benchenv

    print(benchenv.as_installed())
    with tempfile.TemporaryDirectory(prefix="rlm-bench-remote-") as tmp_s:
        tmp = Path(tmp_s)
        web = tmp / "web"
        web.mkdir()
        line = "2026-12-01 12:00:00 INFO a line of a log file, nothing to see here\n"
        (web / "big.txt").write_text(line * (args.mb * 1_000_000 // len(line)))
        size_mb = (web / "big.txt").stat().st_size / 1e6
        server, base = serve(web)
        bare = make_repo(tmp, args.files)
        rows = []
        for run in range(args.runs):
            home = tmp / f"home{run}"
            env = {**os.environ, "RLM_HOME": str(home), "NO_COLOR": "1"}
            local = timed(["ls", str(web / "big.txt"), "--max-file-size", "1GB"], env)
            fetched = timed(["ls", f"{base}/big.txt"], env)
            cloned = timed(["ls", f"file://{bare}"], env)
            cached = timed(["ls", f"file://{bare}"], env)
            rows.append((local, fetched, cloned, cached))
            print(f"run {run + 1}: ls local file {local:.2f} s, ls URL {fetched:.2f} s "
                  f"({size_mb / fetched:.0f} MB/s overall); ls remote ({args.files} files): "
                  f"clone {cloned:.2f} s, cached {cached:.2f} s")
        server.shutdown()
        med = [statistics.median(r[i] for r in rows) for i in range(4)]
        print(f"median ({size_mb:.0f} MB, {args.files} files): local {med[0]:.2f} s, URL {med[1]:.2f} s "
              f"(+{med[1] - med[0]:.2f} s for the download, {size_mb / med[1]:.0f} MB/s overall), "
              f"clone {med[2]:.2f} s, cached {med[3]:.2f} s")


if __name__ == "__main__":
    main()
