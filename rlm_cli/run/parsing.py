"""Parsing root LM replies: code blocks to run, and answers given as text.

Rules (contract, "The REPL the root LM programs"):
- Code is taken from fenced blocks tagged ``repl`` or ``python`` (also ``py``/``python3``), in order.
  A fence must open a line (indentation allowed) with nothing after the language word, so a fence
  mentioned inside prose ("write a ```repl``` block") is not a block. A code block that is never
  closed (the reply was cut off, by the token limit or by rlm's reply bound) is not run: its end is
  unknown, so running it would run a fragment. ``unclosed_block`` says so, and a text FINAL in such a
  reply is not taken either.
- ``FINAL(answer)`` / ``FINAL_VAR(name)`` written as text count only in a reply with no code block;
  beside code they are reported as ignored (the model had not seen its code run). The answer text
  is taken with balanced parentheses and quotes, so ``FINAL(f(x) = (a, b))`` keeps its inner
  parentheses; a Python literal (``FINAL("42")``) is unquoted.
- Small models mangle the protocol in ways that are still unambiguous, and these are accepted (each
  seen in real replies of a 1.5B model; see tests/unit/test_weak_model_harness.py): the tag on the
  line before a bare fence (``repl`` then ````` ```), the tag as the first line inside a bare fence,
  and the tag alone with its opening fence lost (``repl``, code that parses as Python, then a closing
  fence), and a bare fence (no language word) whose body parses as Python and uses a name of the REPL
  (``search(...)``, ``print(context[:100])``), when the reply has no tagged block (a tagged block
  beside it means the bare one is an illustration), and a whole reply without fences that parses as
  Python and calls a REPL function other than FINAL (``search('...')``). ``Final(...)`` or
  ``final_var(...)`` in another case, in a reply with no code, counts when its argument is unambiguous: a quoted literal, or text with a digit or of three or more words; a bare
  name is read as ``FINAL_VAR`` (it answers only when the variable exists). ``Final(your answer)``
  is a placeholder, not an answer: ``other_case_final`` is set and the loop says how to answer. The
  same holds for ``FINAL(your answer)`` in upper case (:data:`PLACEHOLDERS`: template text of rlm's
  own prompts, which small models copy).
- ``FINAL(name)`` as text, where ``name`` is a bare identifier naming a REPL variable, answers with
  the variable's value (the loop checks; otherwise the text itself is the answer).
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass, field

CODE_LANGS = {"repl", "python", "py", "python3"}
_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[A-Za-z0-9_+.-]*)[ \t]*$")
_FINAL = re.compile(r"(?<![A-Za-z0-9_])(FINAL_VAR|FINAL)\s*\(")
_ANY_CASE_FINAL = re.compile(r"(?<![A-Za-z0-9_])(final_var|final)\s*\(", re.IGNORECASE)
_TAG_LINE = re.compile(r"^[ \t]*[`*]{0,2}(repl|python|py|python3)[`*]{0,2}:?[ \t]*$", re.IGNORECASE)


PLACEHOLDERS = frozenset({"your answer", "your actual answer", "your final answer", "answer",
                          "...", "\u2026"})
"""Answers that are the template text of rlm's own prompts ("FINAL(your answer)"), not answers."""


def is_placeholder(answer: str) -> bool:
    """Whether ``answer`` is only a template placeholder (:data:`PLACEHOLDERS`, any case, quotes or
    angle brackets around it ignored)."""
    return answer.strip().strip("\"'`<>[]*").strip().lower() in PLACEHOLDERS


@dataclass
class ParsedReply:
    """A root reply, parsed. ``blocks``: code to run, in order; ``final_text`` / ``final_var``: an
    answer given as text (only when there are no blocks); ``final_beside_code``: a text FINAL that
    was ignored because the reply also had code; ``untagged_blocks``: fenced blocks with no or
    another language tag (not run); ``unclosed_block``: a code block that was never closed (not
    run); ``empty_blocks``: code blocks with nothing between their fences."""

    blocks: list[str] = field(default_factory=list)
    final_text: str | None = None
    final_var: str | None = None
    final_beside_code: bool = False
    untagged_blocks: int = 0
    untagged_code: int = 0  # of those, blocks holding Python statements (not an imagined output or a value)
    prose: str = ""
    unclosed_block: bool = False
    other_case_final: str | None = None
    empty_blocks: int = 0


def _scan(text: str) -> tuple[list[str], int, str, bool, int, int]:
    """Returns (code blocks, number of untagged/other blocks, the reply text outside code blocks,
    whether a code block was left unclosed, number of empty code blocks, number of untagged blocks
    holding Python statements)."""
    blocks: list[str] = []
    bare: list[tuple[int, int, str]] = []  # bare fences holding REPL code: (prose start, prose end, code)
    untagged = empty = untagged_code = 0
    unclosed = False
    prose: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        headless = _headless_block(lines, i) if not m else None
        if headless is not None:  # "repl" on its own line, code, then a closing fence: the opening one was lost
            code, i = headless
            blocks.append(code)
            continue
        if not m:
            prose.append(lines[i])
            i += 1
            continue
        fence, lang = m.group("fence"), m.group("lang").lower()
        if not lang and prose and _TAG_LINE.match(prose[-1]):
            # the tag written on the line before a bare fence ("repl" then "```"): small models do this
            lang = prose.pop().strip().strip("`*:").lower()
        close = re.compile(r"^[ \t]*" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}[ \t]*$")
        body: list[str] = []
        i += 1
        while i < len(lines) and not close.match(lines[i]):
            body.append(lines[i])
            i += 1
        closed = i < len(lines)
        i += 1  # the closing fence (or past the end)
        if not lang and body and _TAG_LINE.match(body[0]):
            lang = body.pop(0).strip().strip("`*:").lower()  # "```" then "repl" on the next line
        if lang in CODE_LANGS:
            code = textwrap.dedent("\n".join(body)).strip("\n")
            if code.strip() and closed:
                blocks.append(code)
            elif code.strip():
                unclosed = True
            elif closed:
                empty += 1
        else:
            code = textwrap.dedent("\n".join(body)).strip("\n")
            if not lang and closed and _repl_python(code):
                bare.append((len(prose), len(prose) + len(body), code))
            untagged += 1
            untagged_code += _statements(code)
            prose.extend(body)
    if not blocks and not bare and not untagged and not unclosed and _repl_call(text.strip()):
        return [text.strip()], 0, "", False, empty, 0  # the whole reply is REPL code, with no fence at all
    if bare and not blocks and not unclosed:  # bare fences of REPL code, and no tagged block: run them
        cut = {n for start, end, _ in bare for n in range(start, end)}
        prose = [line for n, line in enumerate(prose) if n not in cut]
        blocks, untagged = [code for _, _, code in bare], untagged - len(bare)
        untagged_code -= len(bare)
    return blocks, untagged, "\n".join(prose), unclosed, empty, untagged_code


def _statements(code: str) -> bool:
    """Whether ``code`` parses as Python holding more than one bare value (``show(data)``, ``x = 1``;
    not ``42``, ``No hits found.``)."""
    tree = parse_python(code)
    return tree is not None and bool(tree.body) and not (
        len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr)
        and isinstance(tree.body[0].value, ast.Constant | ast.Name))


def parse_python(code: str) -> ast.Module | None:
    """``code`` parsed as Python, or None when it is not Python (a block of prose in a fence)."""
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError):
        return None


REPL_NAMES = frozenset({"context", "files", "search", "grep", "count", "definitions", "callers", "llm_query",
                        "llm_query_batched", "rlm_query", "rlm_query_batched", "FINAL", "FINAL_VAR", "SHOW_VARS",
                        "print"})


def _repl_call(code: str) -> bool:
    """Whether a whole reply without fences is REPL code: it parses as Python and calls a function
    of the REPL other than FINAL/FINAL_VAR (a bare ``FINAL(...)`` reply stays a text answer)."""
    tree = parse_python(code)
    return tree is not None and any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in REPL_NAMES
        and node.func.id not in ("FINAL", "FINAL_VAR") for node in ast.walk(tree))


def _repl_python(code: str) -> bool:
    """Whether a bare fence's ``code`` is REPL code: it parses as Python and uses a name of the REPL
    (:data:`REPL_NAMES`). Invented output (``60700``, a log line) and prose do not."""
    tree = parse_python(code)
    return tree is not None and any(isinstance(node, ast.Name) and node.id in REPL_NAMES for node in ast.walk(tree))


def _headless_block(lines: list[str], i: int) -> tuple[str, int] | None:
    """A code block whose opening fence is missing: line ``i`` is a bare language tag (``repl``), the
    lines after it are Python (they parse), and a bare closing fence ends them. Returns (code, index
    of the line after the fence) or None. Small models write this (the tag without its backticks)."""
    if not _TAG_LINE.match(lines[i]) or i + 1 >= len(lines) or _OPEN.match(lines[i + 1]):
        return None
    for j in range(i + 1, min(len(lines), i + 400)):
        fence = _OPEN.match(lines[j])
        if fence:
            if fence.group("lang"):
                return None
            code = textwrap.dedent("\n".join(lines[i + 1:j])).strip("\n")
            return (code, j + 1) if code.strip() and parse_python(code) is not None else None
    return None


def _balanced(text: str, start: int) -> tuple[str, bool]:
    """The text from ``start`` up to the parenthesis closing an already-open one. Quotes are
    respected. Returns (inner text, closed?)."""
    depth, i, quote = 1, start, None
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if text.startswith(quote, i):
                i += len(quote)
                quote = None
                continue
        elif ch in "\"'":
            quote = text[i:i + 3] if text[i:i + 3] in ('"""', "'''") else ch
            i += len(quote)
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return text[start:i], True
        i += 1
    return text[start:], False


def _unquote(inner: str) -> str:
    inner = inner.strip()
    if inner[:1] in "\"'" or inner[:2].lower() in ("f'", 'f"', "r'", 'r"'):
        try:
            value = ast.literal_eval(inner)
        except (ValueError, SyntaxError):
            return inner
        return value if isinstance(value, str) else str(value)
    return inner


def find_final(text: str) -> tuple[str, str] | None:
    """The first ``FINAL(...)``/``FINAL_VAR(...)`` in ``text``: (``"FINAL"`` or ``"FINAL_VAR"``, arg)."""
    m = _FINAL.search(text)
    if not m:
        return None
    inner, closed = _balanced(text, m.end())
    if not closed:
        inner = inner.rstrip()
        inner = inner[:-1] if inner.endswith(")") else inner
    arg = _unquote(inner)
    if m.group(1) == "FINAL_VAR":
        arg = arg.strip().strip("\"'")
    return m.group(1), arg


def parse_reply(text: str) -> ParsedReply:
    """Parse one root LM reply (see the module docstring for the rules)."""
    blocks, untagged, prose, unclosed, empty, untagged_code = _scan(text)
    parsed = ParsedReply(blocks=blocks, untagged_blocks=untagged, untagged_code=untagged_code,
                         prose=prose.strip(), unclosed_block=unclosed,
                         empty_blocks=empty)
    found = find_final(prose)
    if found is None:
        other = _ANY_CASE_FINAL.search(prose)
        if other and not blocks and not unclosed:
            parsed.other_case_final = other.group(1)
            _take_other_case(parsed, prose, other)
        return parsed
    if blocks or unclosed:
        parsed.final_beside_code = True
    elif found[0] == "FINAL" and is_placeholder(found[1]):
        parsed.other_case_final = "FINAL"  # FINAL(your answer): copied from the prompt, not an answer
    elif found[0] == "FINAL":
        parsed.final_text = found[1]
    else:
        parsed.final_var = found[1]
    return parsed


def _take_other_case(parsed: ParsedReply, prose: str, m: re.Match) -> None:
    """``Final(...)``/``final_var(...)`` in a reply with no code: taken as FINAL/FINAL_VAR when its
    argument is unambiguous (a quoted literal, or text with a digit or of three words or more);
    a bare name (``Final(answer)``) is taken as FINAL_VAR, which only answers when the variable
    exists. Anything else stays unanswered (``other_case_final`` set; the loop says how to answer)."""
    inner, _closed = _balanced(prose, m.end())
    raw = inner.strip().rstrip(")").strip()
    if not raw:
        return
    if m.group(1).lower() == "final_var" or raw.isidentifier():
        parsed.final_var = raw.strip("\"'`")
        return
    value = _unquote(raw).strip().strip("`*").strip()
    quoted = raw[:1] in "\"'"
    if value and not is_placeholder(value) and (quoted or any(c.isdigit() for c in value)
                                                or len(value.split()) >= 3):
        parsed.final_text = value
