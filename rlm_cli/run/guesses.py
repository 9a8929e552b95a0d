"""Telling a guessed answer from one resting on what the root LM was shown.

Weak root LMs write a search and ``FINAL("321")`` in the same reply: the literal was chosen before
the search's output existed (seen with Qwen2.5-Coder-1.5B on `rlm bench niah`: three hits printed,
none holding 321), or write ``FINAL("3456")`` after an error, with no 3456 anywhere in what they had
read. Codes and numbers are what such models invent, and what can be checked. The loop refuses a
``FINAL`` whose argument is a literal, written before the model had read any output or in a reply
whose code printed output it has not read, when a number or a path in the literal occurs nowhere in
what it had been shown (``FINAL("billing/parse_legacy_record.py")`` after a search whose hits named
``src/orbit/auth/rules.py``) (a literal refused once stays refused while that holds). Before any output
was read, a literal made only of the question's own words (``FINAL("crimson tapir vault")``) is
refused too. Before any code has run, a text ``FINAL`` of such numbers or words is treated like a
reply without code (the engine runs the offered first block instead). A ``FINAL`` of a computed value (``FINAL(hits[0][2])``, ``FINAL_VAR(x)``) is never
refused: the code produced it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable

from rlm_cli.run.answers import words
from rlm_cli.run.parsing import parse_python

_NUMBER = re.compile(r"\d{3,}")
_TOKEN = re.compile(r"[\w./-]+")
_EXTENSION = re.compile(r"[\w-]{2,}\.(?:py|pyi|js|jsx|ts|tsx|go|rs|java|kt|c|h|cc|cpp|hpp|cs|rb|php|swift|sh|md|rst|txt|"
                        r"json|ya?ml|toml|ini|cfg|html?|css|sql|xml|pdf|log|csv)", re.IGNORECASE)
_DASHED = re.compile(r"\d+(?:-\d+)+")
LOWER_CASE_FINAL_ERRORS = ("NameError: name 'final' is not defined",)


def literal_final(code: str, names: tuple[str, ...] = ("FINAL", "Final", "final")) -> str | None:
    """The argument of the first ``FINAL(...)`` call in ``code`` as the model meant it, when it is a
    literal: a str or number literal's value, or the source text of digit groups joined by ``-``
    (``FINAL(5978-8761)`` writes a code without its quotes; Python would subtract). None when
    ``code`` has no such call (a computed argument, ``FINAL_VAR``, or code that does not parse).
    ``names``: the function names that count as FINAL."""
    tree = parse_python(code)
    for node in ast.walk(tree) if tree is not None else ():
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in names and len(node.args) == 1 and not node.keywords):
            continue
        arg = node.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str | int | float) \
                and not isinstance(arg.value, bool):
            return str(arg.value)
        source = ast.get_source_segment(code, arg) or ""
        return source if isinstance(arg, ast.BinOp) and _DASHED.fullmatch(source) else None
    return None


def invented(answer: str, seen: str) -> bool:
    """Whether ``answer`` holds numbers or paths that do not all occur in ``seen`` (the messages the
    model has read). Its numbers are its runs of 3 or more digits (``9429`` and ``3981`` of
    ``9429-3981``, ``1878`` of ``a.txt:1878``, ``1000000`` of ``niah-1000000-7``); its paths are its
    words holding a ``/`` between letters or ending in a common file extension (``billing/rules.py``,
    ``views.py``; a ``:line`` suffix is not part of them), found in ``seen`` as written or as the end
    of a longer path. An answer with neither (``Paris``, ``two``) is never called invented."""
    if any(number not in seen for number in _NUMBER.findall(answer)):
        return True
    return any(path not in seen for path in paths_in(answer))


def echoes(answer: str, question: str) -> bool:
    """Whether ``answer`` is made only of words of ``question`` (:func:`~rlm_cli.run.answers.words`;
    at least one word): ``crimson tapir vault`` for "What is the access code for the crimson tapir vault?". Written
    before any output was read, such an answer restates the question: a weak root LM copying the worked
    example's ``FINAL("...")`` shape as its first reply (seen on `rlm bench niah`). Once output was read,
    it may be right (one of the labels the question lists), so :class:`FinalCheck` and the engine ask
    this only of blind answers."""
    said = words(answer)
    return bool(said) and set(said) <= set(words(question))


def paths_in(text: str) -> list[str]:
    """The path-like words of ``text`` (see :func:`invented`), trailing dots and slashes stripped."""
    out = []
    for token in _TOKEN.findall(text):
        token = token.rstrip("./")
        if ("/" in token and re.search(r"[A-Za-z]/|/[A-Za-z]", token)) or _EXTENSION.fullmatch(token):
            out.append(token)
    return out


class FinalCheck:
    """The answer a step's ``FINAL`` recorded, as the model meant it, for one RLM instance.

    ``FINAL(5978-8761)`` (Python subtracted) answers the code as written; ``final("...")`` with a
    literal (a ``NameError``) answers that literal; a literal holding a number or path never read, written
    while output was unread (or refused before), is refused as a guess. ``refused`` remembers the
    refused literals. ``echo``: whether :func:`echoes` applies (the top-level RLM only: a child's
    prompt may carry the text it reads)."""

    def __init__(self, question: str = "", echo: bool = True) -> None:
        self.refused: set[str] = set()
        self.question = question
        self.echo = echo  # refuse a blind literal made only of the question's words (:func:`echoes`)
        self.question_words = set(re.findall(r"\w+", question))

    def restates(self, answer: str) -> bool:
        """Whether ``answer``, given before any output was read, only restates the question
        (:func:`echoes`; never for a child RLM, see ``echo``)."""
        return self.echo and echoes(answer, self.question)

    def bare_name(self, code: str, error: str | None) -> str | None:
        """``FINAL(shipping)``, the quotes forgotten (a ``NameError``): the name, when the question
        itself holds it as a word (one of the labels it lists). None otherwise: ``FINAL(result)``
        of a variable never defined stays no answer."""
        found = re.fullmatch(r"NameError: name '(\w+)' is not defined", error or "")
        tree = parse_python(code) if found else None
        for node in ast.walk(tree) if tree is not None else ():
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("FINAL", "Final")
                    and len(node.args) == 1 and isinstance(node.args[0], ast.Name)
                    and node.args[0].id == found.group(1)):
                return found.group(1) if found.group(1) in self.question_words else None
        return None

    def settle(self, code: str, final: str | None, error: str | None, unread: bool,
               read: Callable[[], str], blind: bool = False) -> tuple[str | None, str]:
        """(the answer, or None; why it was refused as a guess: ``"invented"``, ``"echo"``, or ``""``
        when it was not) for one executed step: ``code``, what
        its ``FINAL`` recorded (``final``), its ``error`` line, whether the model had output it had
        not read (``unread``), ``read()``: everything it had been shown, and whether no output at all
        had been read or printed yet (``blind``: then a literal made only of the question's words,
        :func:`echoes`, is refused too)."""
        if final is None and error in LOWER_CASE_FINAL_ERRORS:
            final = literal_final(code, ("final",))
        if final is None:
            final = self.bare_name(code, error)
            if final is not None:
                return final, ""
        if final is None:
            return None, ""
        written = literal_final(code)
        if written is not None and final != written and "-" in written:
            final = written  # FINAL(5978-8761): the code as written, not its difference
        if written == final and (unread or final in self.refused) and invented(final, read()):
            self.refused.add(final)
            return None, "invented"
        if written == final and blind and self.restates(final):
            return None, "echo"
        return final, ""
