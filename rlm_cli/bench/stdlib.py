"""The ``stdlib`` suite: questions over real code no one here wrote, the running interpreter's own
standard library (found on every machine that runs rlm).

The input is a set of the standard library's ``.py`` files (tests, ``idlelib``, ``lib2to3``,
``ensurepip`` and ``site-packages`` left out), drawn by the task's random generator until the asked
length is filled (a file that does not fit whole is cut after its last top-level statement that
does, so it still parses); paths are relative to the standard library (``json/decoder.py``). Each question is
answered from the source by :mod:`ast` when the task is made, so the expected answer is exact for
this interpreter (``meta["python"]`` names its version; another version draws other files). Kinds:

- ``where``: in which file is the top-level function X defined (X defined once in the input);
  scored ``name`` against the other files' paths;
- ``caller``: which function calls X (exactly one function of the input calls ``X(...)`` by name,
  and nothing calls it as an attribute); ``name``, no other function named;
- ``returns``: what the function X returns (its one ``return`` statement returns a name, an
  attribute or a constant); ``name``;
- ``default``: what the parameter P of X defaults to (a constant); ``name``;
- ``count``: how many top-level functions the file P defines (``def`` statements directly in the
  module, methods not counted); ``numeric`` (0.75 ** error: a count needs code, not reading).
"""

from __future__ import annotations

import ast
import os
import sys
import sysconfig
from functools import lru_cache

from rlm_cli.bench.tasks import Task, task_rng

KINDS = ("where", "caller", "returns", "default", "count")
SKIPPED_DIRS = ("test", "tests", "idlelib", "lib2to3", "ensurepip", "site-packages", "dist-packages",
                "__pycache__", "turtledemo", "tkinter", "pydoc_data")
MIN_FILE_CHARS = 800
MAX_CONSTANT_CHARS = 24


@lru_cache(maxsize=1)
def stdlib_files() -> tuple[tuple[str, int], ...]:
    """``(relative path, size in bytes)`` of the standard library's ``.py`` files, sorted by path
    (the same list on every call of one interpreter)."""
    root = sysconfig.get_paths()["stdlib"]
    out = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                try:
                    size = os.path.getsize(path)
                except OSError:
                    continue
                if size >= MIN_FILE_CHARS:
                    out.append((os.path.relpath(path, root).replace(os.sep, "/"), size))
    return tuple(sorted(out))


def _read(rel: str) -> str | None:
    try:
        with open(os.path.join(sysconfig.get_paths()["stdlib"], rel), encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError):
        return None


def _constant(node: ast.AST | None) -> str | None:
    """The source of a short constant (number, string, True/False/None), strings unquoted."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
        text = node.value if isinstance(node.value, str) else ast.unparse(node)
        if isinstance(node.value, str) and (not text.strip() or any(c in text for c in "\n\r\t")):
            return None
        return text if 0 < len(text) <= MAX_CONSTANT_CHARS else None
    return None


class _Facts:
    """What the questions need, from the ASTs of the chosen files."""

    def __init__(self, trees: dict[str, ast.Module]) -> None:
        self.top: dict[str, list[str]] = {}  # top-level function name -> files defining it
        self.defined: set[str] = set()  # every def name (functions and methods)
        self.callers: dict[str, set[str]] = {}  # name -> functions calling name(...) by name
        self.attr_called: set[str] = set()  # names called as x.name(...)
        self.returns: dict[str, str] = {}  # top-level function -> its one simple return value
        self.defaults: dict[str, list[tuple[str, str]]] = {}  # top-level function -> [(param, constant)]
        self.counts: dict[str, int] = {}  # file -> top-level defs
        for path, tree in trees.items():
            self.counts[path] = sum(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in tree.body)
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self.top.setdefault(node.name, []).append(path)
                    self._function_facts(node)
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self.defined.add(node.name)
                    for inner in ast.walk(node):
                        if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name):
                            self.callers.setdefault(inner.func.id, set()).add(node.name)
                        elif isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute):
                            self.attr_called.add(inner.func.attr)

    def _function_facts(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        rets = [n for n in ast.walk(node) if isinstance(n, ast.Return)]
        if len(rets) == 1 and isinstance(rets[0].value, (ast.Name, ast.Attribute)) and len(ast.unparse(rets[0].value)) > 1:
            self.returns[node.name] = ast.unparse(rets[0].value)  # a one-letter name is too easy a token
        elif len(rets) == 1 and _constant(rets[0].value) is not None:
            self.returns[node.name] = _constant(rets[0].value)
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        pairs = list(zip([a.arg for a in positional[len(positional) - len(args.defaults):]], args.defaults, strict=True))
        pairs += [(a.arg, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None]
        simple = [(name, _constant(d)) for name, d in pairs if _constant(d) is not None]
        if simple:
            self.defaults[node.name] = simple


def _head(text: str, tree: ast.Module, limit: int) -> str:
    """The longest run of ``text``'s first top-level statements (whole lines) of at most ``limit``
    characters: still valid Python, so the questions hold for it."""
    lines = text.splitlines(keepends=True)
    best, used = 0, 0
    for node in tree.body:
        end = node.end_lineno or node.lineno
        size = sum(len(line) for line in lines[best:end]) + used
        if size > limit:
            break
        best, used = end, size
    return "".join(lines[:best])


def generate(length: int, index: int, seed: int) -> Task:
    """The stdlib task ``index`` of at most ``length`` characters for ``seed``."""
    rng = task_rng("stdlib", length, index, seed)
    candidates = list(stdlib_files())
    rng.shuffle(candidates)
    files: dict[str, str] = {}
    trees: dict[str, ast.Module] = {}
    used = 0
    for path, _size in candidates:
        text = _read(path)
        try:
            tree = ast.parse(text) if text is not None else None
        except (SyntaxError, ValueError):
            tree = None
        if text is None or tree is None:
            continue
        if used + len(text) > length:  # the file's first top-level statements that fit, if any
            text = _head(text, tree, length - used)
            if len(text) < MIN_FILE_CHARS:
                continue
            tree = ast.parse(text)
        files[path], trees[path] = text, tree
        used += len(text)
        if used >= length * 0.9:
            break
    facts = _Facts(trees)
    unique = sorted(n for n, where in facts.top.items() if len(where) == 1 and not n.startswith("__"))
    options = {
        "where": unique,
        "caller": sorted(n for n in unique if len(facts.callers.get(n, ())) == 1
                         and n not in facts.attr_called and next(iter(facts.callers[n])) != n),
        "returns": sorted(n for n in unique if n in facts.returns),
        "default": sorted(n for n in unique if n in facts.defaults),
        "count": sorted(p for p, c in facts.counts.items() if 2 <= c <= 80),
    }
    kinds = [k for k in KINDS if options[k]]
    kind = rng.choice(kinds) if kinds else "count"
    paths = tuple(sorted(files))
    if kind == "where":
        fn = rng.choice(options["where"])
        question = f"In which file is the function `{fn}` defined? Answer with the file's path."
        expected, choices, rule = facts.top[fn][0], paths, "name"
    elif kind == "caller":
        fn = rng.choice(options["caller"])
        question = f"Which function calls `{fn}`? Exactly one function does; answer with its name."
        expected = next(iter(facts.callers[fn]))
        choices, rule = tuple(sorted(facts.defined - {fn})), "name"
    elif kind == "returns":
        fn = rng.choice(options["returns"])
        question = (f"The function `{fn}` has one return statement. What does it return? Answer with the "
                    "returned expression only.")
        expected, choices, rule = facts.returns[fn], (), "name"
    elif kind == "default":
        fn = rng.choice(options["default"])
        param, value = rng.choice(facts.defaults[fn])
        question = (f"What is the default value of the parameter `{param}` of the function `{fn}`? "
                    "Answer with the value only.")
        expected, choices, rule = value, (), "name"
    else:
        path = rng.choice(options["count"] or list(paths))
        question = (f"How many top-level functions does the file `{path}` define (def statements directly "
                    "in the module, not methods of classes)? Answer with the number.")
        expected, choices, rule = str(facts.counts.get(path, 0)), (), "numeric"
    return Task(suite="stdlib", length=length, index=index, seed=seed, question=question, expected=expected,
                kind=rule, files=files, choices=choices,
                meta={"question_kind": kind, "files": len(files),
                      "python": ".".join(map(str, sys.version_info[:3]))})
