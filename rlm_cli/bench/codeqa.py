"""The ``codeqa`` suite: questions over a generated multi-file Python repository.

The input is a directory: ``README.md`` and modules ``src/<package>/<area>/<module>.py`` holding
functions with docstrings, keyword parameters with defaults, and calls to functions of other modules
(imported by name). One question per task, of one of three kinds:

- ``where``: in which file is function X defined (the path, scored ``name``: the expected path as a
  token of the answer, a leading directory allowed, no other module path named);
- ``caller``: which function calls Y (exactly one does; ``name``, no other function named);
- ``default``: what parameter P of function F defaults to (``name``: the value as a token).

Loaded by ``rlm``, the files appear in ``files`` as ``<task id>/src/...``; ``base`` gets the same
concatenation, cut to its window.
"""

from __future__ import annotations

import random

from rlm_cli.bench.tasks import Task, task_rng

VERBS = ("load", "parse", "render", "sync", "merge", "split", "fetch", "store", "check", "build", "encode",
         "decode", "scan", "flush", "rotate", "resolve", "format", "apply", "collect", "prune")
ADJECTIVES = ("active", "pending", "cached", "remote", "local", "signed", "daily", "raw", "stale", "nested",
              "partial", "shared", "legacy", "primary", "draft")
NOUNS = ("invoice", "ledger", "session", "token", "report", "order", "account", "batch", "snapshot", "record",
         "profile", "bucket", "message", "schedule", "manifest", "payload", "quota", "index", "receipt", "channel")
AREAS = ("billing", "storage", "auth", "sync", "reports", "api", "jobs", "core")
MODULES = ("handlers", "models", "utils", "service", "client", "cache", "tasks", "views", "store", "rules")
PARAMS = (("timeout", lambda r: str(r.choice((5, 10, 15, 30, 45, 60, 90, 120)))),
          ("retries", lambda r: str(r.randint(0, 9))),
          ("batch_size", lambda r: str(r.choice((16, 32, 64, 100, 128, 250, 500)))),
          ("mode", lambda r: repr(r.choice(("strict", "lenient", "fast", "safe", "append")))),
          ("encoding", lambda r: repr(r.choice(("utf-8", "latin-1", "ascii", "utf-16")))),
          ("verbose", lambda r: r.choice(("True", "False"))),
          ("limit", lambda r: str(r.randint(2, 999))))
KINDS = ("where", "caller", "default")


def _names(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct function names (verb_adjective_noun, then with a numeric suffix)."""
    pool = [f"{v}_{a}_{n}" for v in VERBS for a in ADJECTIVES for n in NOUNS]
    rng.shuffle(pool)
    extra = 2
    while len(pool) < count:
        pool += [f"{name}_{extra}" for name in pool[:count - len(pool)]]
        extra += 1
    return pool[:count]


def _function(rng: random.Random, name: str, params: list[tuple[str, str]], calls: list[str]) -> str:
    sig = ", ".join(["data"] + [f"{p}={v}" for p, v in params])
    body = [f'    """{name.replace("_", " ").capitalize()} for the given data."""', "    result = data"]
    body += [f"    result = {c}(result)" for c in calls]
    body += ["    return result", "", ""]
    return f"def {name}({sig}):\n" + "\n".join(body)


def generate(length: int, index: int, seed: int) -> Task:
    """The codeqa task ``index`` of ``length`` characters for ``seed``."""
    rng = task_rng("codeqa", length, index, seed)
    pkg = rng.choice(("acme", "orbit", "harbor", "quill", "tessera"))
    paths = sorted({f"src/{pkg}/{rng.choice(AREAS)}/{rng.choice(MODULES)}.py" for _ in range(max(3, length // 6000))})
    readme = f"# {pkg}\n\nInternal services. Source under src/{pkg}/.\n"
    names = _names(rng, max(8, length // 180))
    bodies: dict[str, list[str]] = {p: [] for p in paths}
    imports: dict[str, set[tuple[str, str]]] = {p: set() for p in paths}
    where: dict[str, str] = {}
    callers: dict[str, list[str]] = {}
    defaults: dict[str, list[tuple[str, str]]] = {}
    heads = {p: f'"""{p.rsplit("/", 1)[1][:-3].capitalize()} of {pkg}."""\n\n' for p in paths}
    used = len(readme) + sum(len(h) + 2 for h in heads.values())
    for name in names:
        path = rng.choice(paths)
        params = [(p, gen(rng)) for p, gen in rng.sample(PARAMS, rng.randint(0, 3))]
        done = list(where)
        calls = rng.sample(done, min(len(done), rng.randint(0, 2)))
        text = _function(rng, name, params, calls)
        new = {(where[c], c) for c in calls if where[c] != path} - imports[path]
        cost = len(text) + sum(len(_import(*i)) for i in new)
        if used + cost > length:
            break
        used += cost
        bodies[path].append(text)
        imports[path] |= new
        for c in calls:
            callers.setdefault(c, []).append(name)
        where[name], defaults[name] = path, params
    files = {"README.md": readme}
    for path in paths:
        head = "".join(sorted(_import(src, fn) for src, fn in imports[path]))
        files[path] = heads[path] + head + ("\n\n" if head else "") + "".join(bodies[path])
    kind = rng.choice(KINDS)
    single = sorted(fn for fn, cs in callers.items() if len(cs) == 1)
    with_default = sorted(fn for fn, ps in defaults.items() if ps)
    if kind == "caller" and not single or kind == "default" and not with_default:
        kind = "where"
    defined = sorted(where)
    if kind == "where":
        fn = rng.choice(defined)
        question = f"In which file is the function `{fn}` defined? Answer with the file's path."
        expected, choices = where[fn], tuple(p for p in paths if bodies[p])
    elif kind == "caller":
        fn = rng.choice(single)
        question = f"Which function calls `{fn}`? Exactly one function does; answer with its name."
        expected, choices = callers[fn][0], tuple(n for n in defined if n != fn)
    else:
        fn = rng.choice(with_default)
        param, value = rng.choice(defaults[fn])
        question = (f"What is the default value of the parameter `{param}` of the function `{fn}`? "
                    "Answer with the value only.")
        expected, choices = value.strip("'"), ()
    return Task(suite="codeqa", length=length, index=index, seed=seed, question=question, expected=expected,
                kind="name", files=files, choices=choices, meta={"question_kind": kind, "functions": len(where)})


def _import(src_path: str, fn: str) -> str:
    module = src_path[len("src/"):-len(".py")].replace("/", ".")
    return f"from {module} import {fn}\n"
