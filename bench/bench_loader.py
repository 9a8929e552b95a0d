"""Loader benchmark: ``rlm ls`` on a django-sized tree next to files-to-prompt, and a 40 MB file.

What it measures (wall time and peak RSS of the largest process, via time(1))
    1. The django 5.2 sdist (about 7,000 files, 45 MB), downloaded once with
       ``pip download --no-deps --no-binary :all: django==5.2`` into ``bench/.cache/`` and extracted:
       - ``rlm ls TREE`` on the plain tree (no git: the gitignore-rules walk),
       - ``rlm ls TREE`` on a copy that is a git work tree (``git init``, nothing committed: the
         ``git ls-files -co --exclude-standard`` path),
       - ``files-to-prompt TREE`` (installed once into a throwaway venv under ``bench/.cache``),
         its output sent to /dev/null,
       - both tools on a one-line file: each command's own startup, the floor under its tree time.
       These run interleaved, :data:`TREE_ROUNDS` rounds, so machine load hits all of them alike;
       the median and the fastest run are printed, and the ratios to files-to-prompt.
       ``rlm ls`` decodes every file and writes the whole context file, as ``rlm ask`` does (on a
       large tree in two processes, ``loader/parallel.py``: the RSS is the larger of the two).
    2. A 40 MB UTF-8 log (about 10M tokens) loaded into a context file, in a child process running
       ``load_sources`` (parent-side time and RSS; the REPL hand-off is measured elsewhere), then
       the same file with one latin-1 byte near its end (strict UTF-8 fails late: the file is
       decoded twice), and ``rlm ls`` on the 40 MB file.

Targets (from the loader issue)
    as fast as files-to-prompt on the same tree with git's exact file set; 40 MB ready in under 1 s;
    peak RSS under 3 times the input's size.

The ``--json`` row is the load without the table. Next to each wall time, the CPU seconds of the
command's whole process tree: the stable measure when the machine is busy.

It prints numbers and never asserts timings. Run: ``.venv/bin/python bench/bench_loader.py``
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import venv
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
RLM = str(Path(sys.executable).parent / "rlm")
DJANGO = "django==5.2"
RUNS = 3
TREE_ROUNDS = 7
BIG_MB = 40


TIME = shutil.which("time", path="/usr/bin:/bin")  # GNU time: a small parent, see run_measured


def run_measured(cmd: list[str], cwd: Path | None = None, capture: bool = False,
                 env: dict[str, str] | None = None) -> tuple[float, float, int, str, float]:
    """Run ``cmd`` (in ``env``: None for this process's environment); returns (wall seconds, peak
    RSS MB, exit status, stdout if ``capture``, CPU seconds: user + system of the command and every
    process it waited for, a forked loader child and the converter worker included).

    CPU time is what a saturated machine charges: with more runnable processes than cores, wall time
    follows the CPU a command uses, not its parallelism.

    stdout goes to /dev/null unless ``capture``.

    Peak RSS comes from GNU time's ``%M``: Linux counts a child's RSS from before its ``exec`` (the
    forked copy of its parent), so ``wait4`` from this 30 MB Python process would floor every
    measurement at 30 MB; time(1) is a 2 MB parent. Without it, ``wait4`` is used (an upper bound).
    """
    t0 = time.perf_counter()
    with (tempfile.TemporaryFile() if capture else open(os.devnull, "wb")) as outf, \
            tempfile.TemporaryFile() as errf, tempfile.NamedTemporaryFile("r") as rss_file:
        full = [TIME, "-q", "-f", "%M", "-o", rss_file.name, *cmd] if TIME else cmd
        # output to files, not pipes: a tool's warning per skipped file would fill a pipe and block
        proc = subprocess.Popen(full, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=outf, stderr=errf)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        errf.seek(0)
        err = errf.read().decode(errors="replace")
        if capture:
            outf.seek(0)
        out = outf.read().decode(errors="replace") if capture else ""
        kib = rss_file.read().strip().splitlines()
        rss = int(kib[-1]) / 1024 if TIME and kib and kib[-1].isdigit() else usage.ru_maxrss / 1024
    if code != 0:
        print(f"    ! {' '.join(cmd[:3])}... exited {code}: {err.strip()[:200]}")
    return wall, rss, code, out, usage.ru_utime + usage.ru_stime


def measure(label: str, cmd: list[str], cwd: Path | None = None) -> tuple[float, float]:
    runs = [run_measured(cmd, cwd) for _ in range(RUNS)]
    wall = statistics.median(r[0] for r in runs)
    rss = max(r[1] for r in runs)
    print(f"  {label:<52} {wall:7.2f} s {rss:8.1f} MB   (runs: {', '.join(f'{r[0]:.2f}' for r in runs)})")
    return wall, rss


Command = list[str] | tuple[list[str], Callable[[], dict[str, str]]]
"""A command, or (command, a function giving a fresh environment for each of its runs)."""


def measure_interleaved(commands: dict[str, Command], rounds: int) -> dict[str, tuple[float, float, float, float]]:
    """Each command once per round, in turn; prints and returns label -> (median, fastest, peak RSS,
    median CPU seconds)."""
    walls: dict[str, list[float]] = {label: [] for label in commands}
    cpus: dict[str, list[float]] = {label: [] for label in commands}
    rss: dict[str, float] = dict.fromkeys(commands, 0.0)
    for _ in range(rounds):
        for label, spec in commands.items():
            cmd, env = (spec[0], spec[1]()) if isinstance(spec, tuple) else (spec, None)
            wall, peak, _, _, cpu = run_measured(cmd, env=env)
            walls[label].append(wall)
            cpus[label].append(cpu)
            rss[label] = max(rss[label], peak)
    out = {}
    for label, runs in walls.items():
        out[label] = (statistics.median(runs), min(runs), rss[label], statistics.median(cpus[label]))
        print(f"  {label:<52} {out[label][0]:7.2f} s {rss[label]:8.1f} MB   (fastest {min(runs):.2f} s of {rounds}; "
              f"CPU {out[label][3]:.2f} s)")
    return out


def rlm_home_env(home: Path) -> dict[str, str]:
    """This process's environment with ``RLM_HOME=home``: rlm's config, logs and caches (the convert
    cache among them, ``home/cache/convert``) under ``home``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("RLM_")}, "RLM_HOME": str(home)}


class ConvertCaches:
    """RLM_HOME directories for the first-run and second-run measurements: ``cold()`` gives an
    environment with a new, empty RLM_HOME each call (nothing converted yet: a user's first ``rlm``
    on the tree); ``warm()`` one whose convert cache already holds the tree's documents (filled by
    one ``rlm ls`` before the rounds: every later question on the same tree). ``close()`` removes
    them all."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rlm-bench-loader-"))
        self.n = 0

    def cold(self) -> dict[str, str]:
        self.n += 1
        home = self.root / f"cold-{self.n}"
        home.mkdir(mode=0o700)
        return rlm_home_env(home)

    def warm(self) -> dict[str, str]:
        home = self.root / "warm"
        home.mkdir(mode=0o700, exist_ok=True)
        return rlm_home_env(home)

    def entries(self, env: dict[str, str]) -> tuple[int, int]:
        """(files, bytes) in the convert cache of ``env``'s RLM_HOME."""
        d = Path(env["RLM_HOME"]) / "cache" / "convert"
        files = [p for p in d.iterdir() if p.is_file()] if d.is_dir() else []
        return len(files), sum(p.stat().st_size for p in files)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def django_tree() -> Path:
    """The extracted django sdist (downloaded and extracted once)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    trees = [p for p in CACHE.glob("[dD]jango-5.2") if p.is_dir()]
    if trees:
        return trees[0]
    sdists = list(CACHE.glob("[dD]jango-5.2.tar.gz"))
    if not sdists:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        DJANGO, "-d", str(CACHE)], check=True, stdout=subprocess.DEVNULL)
        sdists = list(CACHE.glob("[dD]jango-5.2.tar.gz"))
    with tarfile.open(sdists[0]) as tar:
        top = tar.getnames()[0].split("/")[0]
        tar.extractall(CACHE, filter="data")
    return CACHE / top


def git_copy(tree: Path) -> Path:
    """A copy of ``tree`` that is a git work tree (untracked files only)."""
    copy = CACHE / "django-5.2-git"
    if not (copy / ".git").is_dir():
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(tree, copy)
        subprocess.run(["git", "init", "-q", str(copy)], check=True)
    return copy


def files_to_prompt() -> str | None:
    """files-to-prompt in a throwaway venv under bench/.cache (installed once)."""
    env_dir = CACHE / "ftp-venv"
    exe = env_dir / "bin" / "files-to-prompt"
    if not exe.exists():
        venv.create(env_dir, with_pip=True)
        proc = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "files-to-prompt"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"  (files-to-prompt could not be installed: {proc.stderr.strip()[-200:]})")
            return None
    return str(exe)


def tree_stats(tree: Path) -> str:
    n, size = 0, 0
    for d, _, names in os.walk(tree):
        for name in names:
            n += 1
            size += os.lstat(os.path.join(d, name)).st_size
    return f"{n:,} files, {size / 1e6:.1f} MB"


def loaded_count(tree: Path, env: dict[str, str] | None = None) -> str:
    import json

    out = subprocess.run([RLM, "ls", str(tree), "--json"], capture_output=True, check=True, env=env).stdout
    doc = json.loads(out)
    t = doc["totals"]
    return (f"{t['files']:,} files loaded, {t['chars'] / 1e6:.1f} M chars (~{t['est_tokens'] / 1e6:.1f} M "
            f"tokens), {t['skipped']} skipped")


def big_log(path: Path, latin1_tail: bool) -> Path:
    if not path.exists():
        line = b"2024-05-01T12:00:00.123Z INFO  [worker-7] GET /api/v1/items?page=3 200 12.4ms user=4711\n"
        reps = BIG_MB * 1_000_000 // len(line)
        with open(path, "wb") as fh:
            for _ in range(reps // 1000):
                fh.write(line * 1000)
            if latin1_tail:
                fh.write("ERROR  [worker-2] caf\xe9 cr\xe8me br\xfbl\xe9e\n".encode("latin-1"))
    return path


LOAD_CHILD = """
import sys, time
from pathlib import Path
t0 = time.perf_counter()
from rlm_cli.loader import LoadOptions, load_sources
ctx = load_sources([sys.argv[1]], LoadOptions(), Path(sys.argv[2]))
print(f"{time.perf_counter() - t0:.3f} {ctx.total_chars} {ctx.files[0].encoding}")
"""


def bench_big(path: Path, label: str) -> None:
    out_file = CACHE / "big-context.txt"
    runs = []
    for _ in range(RUNS):
        _, rss, _, out, _ = run_measured([sys.executable, "-c", LOAD_CHILD, str(path), str(out_file)],
                                      capture=True)
        wall, chars, encoding = out.split()
        runs.append((float(wall), rss, int(chars), encoding))
    out_file.unlink(missing_ok=True)
    wall = statistics.median(r[0] for r in runs)
    rss = max(r[1] for r in runs)
    size_mb = path.stat().st_size / 1e6
    print(f"  {label:<52} {wall:7.2f} s {rss:8.1f} MB   ({size_mb:.0f} MB input, {runs[0][2] / 1e6:.1f} M "
          f"chars, {runs[0][3]}; RSS / input = {rss / size_mb:.2f}; "
          f"runs: {', '.join(f'{r[0]:.2f}' for r in runs)})")


def main(argv: list[str] | None = None) -> None:
    import argparse

    import benchenv

    global TREE_ROUNDS
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=TREE_ROUNDS, help="interleaved rounds on the django tree")
    parser.add_argument("--tree-only", action="store_true", help="only part 1 (the django tree)")
    args = parser.parse_args(argv)
    TREE_ROUNDS = max(1, args.rounds)

    print(benchenv.as_installed())
    print(f"Loader benchmark (median wall of {RUNS} runs unless said, peak RSS of the measured process, "
          f"{'from time(1)' if TIME else 'from wait4: floored at this process RSS'})")
    try:
        load = os.getloadavg()[0]
        print(f"  machine: {os.cpu_count()} CPUs, load average {load:.1f} at start")
    except OSError:
        pass
    tree = django_tree()
    gtree = git_copy(tree)
    print(f"\n1. django 5.2 sdist: {tree_stats(tree)}")
    scratch = ConvertCaches()
    try:
        print(f"  rlm (rules walk):   {loaded_count(tree, scratch.cold())}")
        print(f"  rlm (git ls-files): {loaded_count(gtree, scratch.cold())}")
    finally:
        scratch.close()
    measure("git ls-files -co --exclude-standard (reference)",
            ["git", "-C", str(gtree), "ls-files", "-z", "-co", "--exclude-standard"])
    measure("rlm --help (startup alone)", [RLM, "--help"])
    one_line = CACHE / "one-line.txt"
    one_line.write_text("one line\n")
    caches = ConvertCaches()
    warm = caches.warm()
    for target in (tree, gtree):  # fill the warm convert cache (a first question on the tree)
        run_measured([RLM, "ls", str(target)], env=warm)
    files, size = caches.entries(warm)
    print(f"  convert cache after one rlm ls of each tree: {files:,} entries, {size / 1e6:.1f} MB")
    commands: dict[str, Command] = {
        "rlm ls, first run (empty convert cache, rules walk)": ([RLM, "ls", str(tree)], caches.cold),
        "rlm ls, second run (warm convert cache, rules walk)": ([RLM, "ls", str(tree)], caches.warm),
        "rlm ls, second run (warm cache, git ls-files)": ([RLM, "ls", str(gtree)], caches.warm),
        "rlm ls on a one-line file (the command's startup)": ([RLM, "ls", str(one_line)], caches.warm),
        "rlm ls --json, second run (the load without the table)": ([RLM, "ls", "--json", str(tree)], caches.warm)}
    ftp = files_to_prompt()
    if ftp:
        commands["files-to-prompt (output to /dev/null)"] = [ftp, str(tree)]
        commands["files-to-prompt on a one-line file (its startup)"] = [ftp, str(one_line)]
    print(f"  interleaved, {TREE_ROUNDS} rounds (median, peak RSS, fastest run):")
    try:
        res = measure_interleaved(commands, TREE_ROUNDS)
    finally:
        caches.close()
    if ftp:
        ref, ref_start = res["files-to-prompt (output to /dev/null)"], res["files-to-prompt on a one-line file (its startup)"]
        start = res["rlm ls on a one-line file (the command's startup)"]
        targets = (1.5, 1.2, 1.2)
        for label, target in zip(list(commands)[:3], targets, strict=True):
            mine = res[label]
            print(f"  {label[7:]:<52} / files-to-prompt (target <= {target}): {mine[0] / ref[0]:.2f} (median), "
                  f"{mine[1] / ref[1]:.2f} (fastest); beyond each startup: {mine[0] - start[0]:.2f} s vs "
                  f"{ref[0] - ref_start[0]:.2f} s = {(mine[0] - start[0]) / max(ref[0] - ref_start[0], 1e-3):.2f}; "
                  f"CPU {mine[3] / max(ref[3], 1e-3):.2f}")

    if args.tree_only:
        return
    print(f"\n2. one {BIG_MB} MB file loaded into a context file (parent side; REPL hand-off not included)")
    bench_big(big_log(CACHE / f"big-{BIG_MB}mb.log", False), "load_sources, UTF-8 log")
    bench_big(big_log(CACHE / f"big-{BIG_MB}mb-latin1-tail.log", True), "load_sources, latin-1 byte at the end")
    measure(f"rlm ls on the {BIG_MB} MB log", [RLM, "ls", str(CACHE / f"big-{BIG_MB}mb.log")])


if __name__ == "__main__":
    main()
