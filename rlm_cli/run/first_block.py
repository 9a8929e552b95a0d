"""The runnable first block rlm offers the root LM in its first message (and runs itself when the
root LM's first reply has no code that runs): a ``search`` for the question's words and, for a
question of a kind below, the code that answers it, run in the REPL (``count()``, ``grep()``,
``definitions()``, ``callers()``).

Why: a weak root LM (a 1.5B model, issue 22) answered "how many" from the twenty hits it was shown
("2" where 24 was right) and "which label is most frequent" by guessing, while the same model reads a
printed count correctly. Every line here is code the root LM could have written; what it prints is
the REPL's, never rlm's. A question of none of these kinds gets the search alone.

Kinds of question recognised (all case-insensitive, from the question's words only):

- counting ("how many", "number of", "count"): how many lines hold all of its key terms (quoted
  words, identifiers, numbers of three digits or more; not file names);
- comparison (counting words plus "more", "fewer", "than", "compared" ... and two or more key
  terms): each term's count, and which one is on more lines;
- ranking ("most / least frequent | common | often", "frequency"): each candidate's count, highest
  first, and the most and least frequent. The candidates are the quoted key terms, else the longest
  comma-separated list in the question ("The labels are: billing, refund, shipping");
- code (function, class, defined, calls, parameter ... outside quotes, and a name): the name's
  definitions, or its callers with their enclosing functions; a count of a file's functions or
  classes: its ``def`` and ``class`` lines counted. A question about what it returns or its body gets
  its first definitions' lines instead (to the first line indented no deeper than the ``def``; past
  30 lines, only its ``return`` lines), one about a default or its parameters their signature; with
  one definition, the one returned expression or the asked parameter's default is kept in ``answer``;
- pairs ("every pair of distinct users who both ..."): the lines holding the key terms, the things
  named on them and every pair of those.
"""

from __future__ import annotations

import re

FIRST_BLOCK = ("hits = search({question})\nfor path, line, text in hits:\n    print(f\"{{path}}:{{line}}: {{text}}\")")
MAX_BLOCK_QUESTION = 300  # characters of the question quoted in FIRST_BLOCK
MAX_TERMS = 4  # key terms of a counting question
MAX_CANDIDATES = 12  # candidates of a ranking question

COUNTING = re.compile(r"\b(how many|number of|count)\b", re.IGNORECASE)
COMPARING = re.compile(r"\b(more|fewer|less|than|compared|versus)\b", re.IGNORECASE)
RANKING = re.compile(r"\b(?:most|least|more|less)\b[^.?!]{0,40}?\b(?:frequent\w*|common\w*|often|popular)\b|\bfrequency\b",
                     re.IGNORECASE)
PATHLIKE = re.compile(r"/|\.[a-z0-9]{1,4}$")  # a file the question names: lines holding it are not what it counts
_ITEM = r"(?:'[^'\n]{1,40}'|\"[^\"\n]{1,40}\"|`[^`\n]{1,40}`|\w(?:[\w+#-]|\.(?=\w))*)"
LISTED = re.compile(rf"{_ITEM}(?:\s*,\s*{_ITEM})+(?:\s*,?\s+(?:and|or)\s+{_ITEM})?")

CODE_WORDS = re.compile(r"\b(?:functions?|methods?|class(?:es)?|defin\w*|declar\w*|call(?:s|ed|ing|ers?)?|invok\w*|"
                        r"parameters?|arguments?|signature|constants?)\b", re.IGNORECASE)
QUOTES = re.compile(r"`[^`\n]*`|\"[^\"\n]*\"|(?<!\w)'[^'\n]*'(?!\w)")  # a code word inside quotes is a name
CALLING = re.compile(r"\b(?:call(?:s|ed|ing|ers?)?|invok\w*)\b", re.IGNORECASE)
NAMED = re.compile(r"\b(?:function|method|class|def|constant|type)\s+[`'\"]?([A-Za-z_][\w.]*)", re.IGNORECASE)
UNITS = re.compile(r"\b(functions?|methods?|class(?:es)?|def)\b", re.IGNORECASE)
MAX_NAMES = 3  # names a code question's first block looks up
MAX_SHOWN = 10  # definitions or calls printed per name

DEFINED = ("for name in {names}:\n"
           "    found = definitions(name)\n"
           "    for path, line, text in found[:{shown}]:\n"
           "        print(f\"{{name!r}} is defined at {{path}}:{{line}}: {{text.strip()}}\")\n"
           "    if not found:\n"
           "        print(f\"no definition of {{name!r}} found\")")
CALLED = ("for name in {names}:\n"
          "    found = callers(name)\n"
          "    for path, line, caller, text in found[:{shown}]:\n"
          "        print(f\"{{name!r}} is called by {{caller or 'module-level code'}} at {{path}}:{{line}}: {{text.strip()}}\")\n"
          "    print(f\"{{len(found)}} calls of {{name!r}} in all\")")
BODY = ("found = definitions({name!r})\n"
        "for path, line, text in found[:{shown}]:\n"
        "    lines = files[path].splitlines()[line - 1:line - 1 + {scanned}]\n"
        "    depth = len(lines[0]) - len(lines[0].lstrip())\n"
        "    end = next((i for i, t in enumerate(lines) if i and t.strip() and len(t) - len(t.lstrip()) <= depth\n"
        "                and t.lstrip()[0] not in ')]}}'), len(lines))\n"
        "    end = max(i for i in range(end) if lines[i].strip()) + 1  # trailing blank lines dropped\n"
        "    head = {head}\n"
        "    print(f\"{{path}}:{{line}}-{{line + end - 1}}, the definition of {name} ({{end}} lines){what}:\")\n"
        "    print('\\n'.join(lines[:head]))\n"
        "{tail}"
        "if not found:\n"
        "    print(\"no definition of {name!r} found\")")
BODY_HEAD = "min(end, {most})"
BODY_TAIL = ("    for i in range(head, end):  # past the lines shown: its return lines\n"
             "        if lines[i].strip().startswith('return'):\n"
             "            print(f\"{path}:{line + i}: {lines[i]}\")\n")  # BODY_HEAD, BODY_TAIL, SIGNATURE_HEAD: not templates
SIGNATURE_HEAD = "1 + next((i for i, t in enumerate(lines[:end]) if t.rstrip().endswith((':', '{'))), 0)"
RETURNED = ("if len(found) == 1:\n"
            "    returned = [t.strip()[7:].rstrip(';') for t in lines[:end] if t.strip().startswith('return ')]\n"
            "    if len(returned) == 1 and all(returned[0].count(a) == returned[0].count(b) for a, b in ('()', '[]', '{}')):\n"
            "        answer = returned[0]\n        ")  # + KEPT; an expression cut at its line's end is not kept
DEFAULTED = ("import re\n"
             "if len(found) == 1:\n"
             "    given = re.search(r'[(,]\\s*' + {param!r} + r'\\s*(?::[^=,()]*)?=\\s*(\"(?:[^\"\\\\]|\\\\.)*\"|'\n"
             "                      r\"'(?:[^'\\\\]|\\\\.)*'|[^,()\\s]+)\", '\\n'.join(lines[:head]))\n"
             "    if given:\n        answer = given.group(1)\n        ")  # + KEPT
PARAMETER = re.compile(r"\b(?:parameter|argument)\s+[`'\"]?([A-Za-z_]\w*)", re.IGNORECASE)
DEFAULT = re.compile(r"\bdefaults?\b", re.IGNORECASE)
BODY_ASKED = re.compile(r"\b(?:return(?:s|ed)?|default\w*|parameters?|arguments?|signature|body|implement\w*)\b",
                        re.IGNORECASE)
WHOLE_BODY = re.compile(r"\b(?:return(?:s|ed)?|body|implement\w*)\b", re.IGNORECASE)  # else the signature will do
RETURNS = re.compile(r"\breturn(?:s|ed)?\b", re.IGNORECASE)
MAX_BODY_LINES = 30  # lines of a definition the block prints (then only its return lines)
MAX_SCANNED_LINES = 400  # lines of a definition the block reads
MAX_BODIES = 2  # definitions of the name whose lines it prints
FILE_UNITS = ("where = {where}\n"
              "for pattern, what in [(r'^(?:async\\s+)?def\\s', 'top-level functions (def at the start of a line)'),\n"
              "                      (r'^[ \\t]+(?:async\\s+)?def\\s', 'indented def lines (methods, nested functions)'),\n"
              "                      (r'^class\\s', 'top-level classes')]:\n"
              "    print(count(pattern, paths=where), what, 'in', {file!r})")

ASKS_FILE = re.compile(r"\b(?:which|what)\s+(?:file|module|path)\b|\bwhere\b|\bpath\b", re.IGNORECASE)
KEPT_MARK = "FINAL_VAR(answer) answers with"
"""In a block's output: the block kept an answer in the REPL variable ``answer`` and said so."""
KEPT = "print(f\"the variable answer holds {answer!r}: " + KEPT_MARK + " it\")"
FILE_ANSWER = "if len(found) == 1:\n    answer = found[0][0]\n    " + KEPT
CALLER_ANSWER = ("named = sorted({caller for _path, _line, caller, _text in found if caller})\n"
                 "if len(named) == 1:\n    answer = named[0]\n    " + KEPT)

PAIRS = re.compile(r"\bpairs?\s+of\s+(?:\w+\s+){0,2}?([A-Za-z]+?)s\b", re.IGNORECASE)  # "pair of distinct users"
EXAMPLE = re.compile(r"\b(?:for example|for instance|e\.g\.|such as)\b", re.IGNORECASE)
MAX_PAIRS = 300  # pairs printed by the first block
PAIR_SHOWN = 5  # matching lines the pairs block prints (the lines' shape, not the answer)
PAIR_LINES = ("import itertools, re\n"
              "rows = grep({pattern})\n"
              "print(f\"{{len(rows)}} lines hold all of {terms}; the first ones:\")\n"
              "for path, line, text in rows[:{shown}]:\n"
              "    print(f\"{{path}}:{{line}}: {{text}}\")\n"
              "found = sorted({{m.group(1) for _path, _line, text in rows\n"
              "                for m in re.finditer(r'(?i)\\b{noun}s?[\\s:=#]+[\"\\']?([\\w.@-]*\\d[\\w.@-]*|[\\w.@-]+)', text)}})\n"
              "print(f\"{{len(found)}} distinct {noun}s on those lines: {{found}}\")\n"
              "pairs = list(itertools.combinations(found, 2))\n"
              "answer = \"\\n\".join(f\"({{a}}, {{b}})\" for a, b in pairs)\n"
              "print(f\"{{len(pairs)}} pairs of them:\")\n"
              "for a, b in pairs[:{most}]:\n"
              "    print(f\"({{a}}, {{b}})\")\n"
              "print(f\"the variable answer holds all {{len(pairs)}} pairs, one per line: FINAL_VAR(answer) answers with them\")")

COUNT_LINES = ("n = count({pattern})\n"
               "print(f\"{{n}} lines hold all of {terms}: count them with count(), not by reading the hits\")")
COUNT_EACH = ("counts = {{term: count(pattern) for term, pattern in {each}}}\n"
              "for term, n in sorted(counts.items(), key=lambda kv: -kv[1]):\n"
              "    print(f\"{{n}} lines hold {{term!r}}\")")
COMPARE_TWO = ("a, b = {pair}\n"
               "relation = 'more lines than' if counts[a] > counts[b] else 'fewer lines than' "
               "if counts[a] < counts[b] else 'as many lines as'\n"
               "print(f\"{{a!r}} is on {{relation}} {{b!r}}\")")
RANK_ENDS = ("top, low = max(counts.values()), min(counts.values())\n"
             "print('most frequent:', ', '.join(repr(t) for t in counts if counts[t] == top), f'({top} lines)')\n"
             "print('least frequent:', ', '.join(repr(t) for t in counts if counts[t] == low), f'({low} lines)')")
LEAST = re.compile(r"\b(?:least|fewest|rarest|less)\b", re.IGNORECASE)
RANK_ANSWER = "answer = ', '.join(t for t in counts if counts[t] == {end})\n"  # + KEPT


def _key_terms(text: str, files: bool = False) -> list[str]:
    """The key terms of ``text`` (:func:`rlm_cli.repl.child_grep.parse_query`: quoted words,
    identifiers), lower-cased, in order: those that are not file names, or (``files``) only those."""
    from rlm_cli.repl.child_grep import parse_query

    terms, keys = parse_query(text)
    return [t for t in terms if t in keys and bool(PATHLIKE.search(t)) == files]


def count_terms(question: str) -> list[str]:
    """The terms a counting question pins its records by: its key terms (identifiers, quoted words:
    :func:`rlm_cli.repl.child_grep.parse_query`; not file names) and its numbers of three digits or
    more (a status 404, a year); at most :data:`MAX_TERMS`; empty for a question that does not ask
    how many."""
    if not COUNTING.search(question):
        return []
    from rlm_cli.repl.child_grep import WORD

    keys = _key_terms(question)
    numbers = [w for w in WORD.findall(question) if w.isdigit() and len(w) >= 3]
    return list(dict.fromkeys(keys + [n for n in numbers if n not in keys]))[:MAX_TERMS]


def rank_candidates(question: str) -> list[str]:
    """The candidates a ranking question ("which label is the most frequent? The labels are: a, b,
    c") asks to order by frequency: its quoted key terms when there are two or more, else the items of
    its longest comma-separated list (quotes stripped, stop words dropped), at most
    :data:`MAX_CANDIDATES`; empty for a question that does not rank or names fewer than two."""
    if not RANKING.search(question):
        return []
    from rlm_cli.repl.child_grep import QUOTED, STOP_WORDS

    quoted = [" ".join((m.group(1) or m.group(2) or m.group(3)).split()) for m in QUOTED.finditer(question)]
    quoted = [q for q in dict.fromkeys(quoted) if not PATHLIKE.search(q)]
    if len(quoted) >= 2:
        return quoted[:MAX_CANDIDATES]
    lists = sorted((m.group(0) for m in LISTED.finditer(question)), key=len, reverse=True)
    for text in lists:
        items = list_items(text, STOP_WORDS)
        if len(items) >= 2:
            return items[:MAX_CANDIDATES]
    return []


def list_items(text: str, dropped) -> list[str]:
    """The items of one comma-separated list of :data:`LISTED` (``a, 'b' or c``): split at commas
    and at "and" / "or", quotes stripped, each once, less those whose lower case is in ``dropped``."""
    items = []
    for part in re.split(r",|\s+(?:and|or)\s+", text):
        item = re.sub(r"^(?:and|or)\s+", "", part.strip()).strip("'\"`").strip()
        if item and item.lower() not in dropped:
            items.append(item)
    return list(dict.fromkeys(items))


def pair_plan(question: str) -> tuple[str, list[str]] | None:
    """``(noun, terms)`` for a question asking for every pair of things that share something ("List
    every pair of distinct users who both have a record labelled 'shipping'"): the things (``user``)
    and the key terms that pick their lines (quoted words, identifiers; not file names, and none
    from an example the question gives: "for example (u1234, u5678)"); None for another question."""
    found = PAIRS.search(question)
    if not found:
        return None
    chosen = _key_terms(EXAMPLE.split(question, 1)[0])[:MAX_TERMS]
    return (found.group(1).lower(), chosen) if chosen else None


def code_names(question: str) -> list[str]:
    """The names a code question asks about ("Which function calls `sync_ledger`?", "where is the
    class `Parser` defined?"): the key terms (:func:`rlm_cli.repl.child_grep.parse_query`: quoted
    words, identifiers; not file names) that follow "function", "method", "class" ... when there are
    any, else all its identifier key terms; at most :data:`MAX_NAMES`; empty for a question without
    code words (function, class, defined, calls, parameter ...)."""
    if not CODE_WORDS.search(QUOTES.sub(" ", question)):
        return []
    names = [t for t in _key_terms(question) if re.fullmatch(r"[A-Za-z_][\w.]*", t)]
    named = [m.group(1).lower() for m in NAMED.finditer(question)]
    chosen = [n for n in names if n in named] or names
    return [_original_case(question, n) for n in chosen[:MAX_NAMES]]


def counted_file(question: str) -> str | None:
    """The file a counting question asks about when it counts code units ("How many top-level
    functions does the file `argparse.py` define?"): its first key term that is a file name; None
    otherwise."""
    if not COUNTING.search(question) or not UNITS.search(question):
        return None
    files = [_original_case(question, t) for t in _key_terms(question, files=True)]
    return files[0] if files else None


def _original_case(question: str, term: str) -> str:
    """``term`` (lower-cased by parse_query) as the question writes it (names are case-sensitive)."""
    found = re.search(re.escape(term), question, re.IGNORECASE)
    return found.group(0) if found else term


def first_block(question: str) -> str:
    """The first block for ``question``: Python code, no fences. A search for the question's words
    (the question quoted as a Python literal, whitespace collapsed, cut to :data:`MAX_BLOCK_QUESTION`
    characters), then for a code question the names' definitions or callers (a question about one name
    whose answer is one file or one caller keeps it in ``answer``; one about what a name returns, a
    default or its parameters gets its definition's lines printed, and one return line kept), or a
    file's def and class lines counted. A pairs question (:func:`pair_plan`) gets no search: the matching lines' first five,
    the things named on them and every pair, kept in ``answer``; a ranking question
    (:func:`rank_candidates`) neither: each candidate's count, the most and least frequent, and the one
    asked for (least or most) in ``answer``. For a counting question (:func:`count_terms`) how many lines hold all of
    its terms, or, when it compares two or more terms, each one's count and, for two, which is on more
    lines. Counts are of lines holding the term as a whole word, case-insensitive."""
    block = FIRST_BLOCK.format(question=repr(" ".join(question.split())[:MAX_BLOCK_QUESTION]))
    names = code_names(question)
    if names:  # who calls it, or where it is defined (its definition shows its parameters)
        calling = CALLING.search(question)
        if not calling and BODY_ASKED.search(question) and not ASKS_FILE.search(question):
            whole = WHOLE_BODY.search(question)  # its lines, or a default's or parameter's signature only
            block += "\n" + BODY.format(name=names[0], shown=MAX_BODIES, scanned=MAX_SCANNED_LINES,
                                          head=BODY_HEAD.format(most=MAX_BODY_LINES) if whole else SIGNATURE_HEAD,
                                          tail=BODY_TAIL if whole else "", what="" if whole else ", its signature")
            param = PARAMETER.search(question)
            if len(names) == 1 and DEFAULT.search(question) and param:  # one definition: its default kept
                block += "\n" + DEFAULTED.format(param=param.group(1)) + KEPT
            elif len(names) == 1 and RETURNS.search(question):  # one definition, one return: kept in answer
                block += "\n" + RETURNED + KEPT
            return block
        block += "\n" + (CALLED if calling else DEFINED).format(names=repr(names), shown=MAX_SHOWN)
        if len(names) == 1 and (calling or ASKS_FILE.search(question)):  # one caller, one file: kept in answer
            block += "\n" + (CALLER_ANSWER if calling else FILE_ANSWER)
    target = counted_file(question)
    if target is not None:
        return block + "\n" + FILE_UNITS.format(where=repr(target), file=target)
    plan = pair_plan(question)
    if plan is not None:  # every pair of things whose lines hold the terms, computed
        noun, terms = plan
        pattern = "(?i)^" + "".join(_holds(t) for t in terms)
        return PAIR_LINES.format(pattern=repr(pattern), noun=noun, most=MAX_PAIRS, shown=PAIR_SHOWN,
                                 terms=", ".join(repr(t) for t in terms))
    candidates = rank_candidates(question)
    if candidates:  # no search: its twenty hits pushed the counts out of a 1.5B root's sight
        end = "low" if LEAST.search(question) else "top"
        return "\n".join([COUNT_EACH.format(each=_each(candidates)), RANK_ENDS, RANK_ANSWER.format(end=end) + KEPT])
    terms = count_terms(question)
    if len(terms) > 1 and COMPARING.search(question):  # "more records labelled 'a' than 'b'?": each count
        block += "\n" + COUNT_EACH.format(each=_each(terms))
        if len(terms) == 2:
            block += "\n" + COMPARE_TWO.format(pair=repr(tuple(terms)))
    elif terms:
        pattern = "(?i)^" + "".join(_holds(t) for t in terms)
        block += "\n" + COUNT_LINES.format(pattern=repr(pattern), terms=", ".join(repr(t) for t in terms))
    return block


def _each(terms: list[str]) -> str:
    """``[(term, pattern), ...]`` as Python source: each term's whole-word, case-insensitive pattern."""
    return repr([(t, "(?i)^" + _holds(t)) for t in terms])


def _holds(term: str) -> str:
    """A lookahead matching a line that holds ``term`` as a whole word (case-insensitive with ``(?i)``)."""
    return f"(?=.*(?<!\\w){re.escape(term)}(?!\\w))"
