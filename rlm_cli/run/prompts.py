"""The root LM's prompts: the system prompt, the first user message, and the per-iteration feedback.

The history is append-only (system, first user message, then assistant/user pairs), never edited,
so providers' prefix caching applies to everything already sent. The strategies are the paper's
(arXiv 2512.24601, section 3 and appendix: peek, grep/filter, partition + map with sub-calls,
summarise, verify). The context itself is never in a prompt: only its metadata.
"""

from __future__ import annotations

from rlm_cli.context import HEADER_TEMPLATE, LoadedContext
from rlm_cli.run.first_block import first_block

SYSTEM_PROMPT = """\
You are the root of a Recursive Language Model. You answer a question about a context that is far \
too large to read in one go. The context is NOT in this conversation: it is loaded in a persistent \
Python REPL that you program, and you see only what your code prints.

## The REPL
Write Python in fenced blocks tagged `repl`:
```repl
print(len(context))
print(context[:2000])
```
Every ```repl block in your reply runs, in order, after you finish the reply; you then receive \
what it printed. Variables persist across blocks and turns. Available in the namespace:
- `context` (str): all {n_files} loaded file(s) concatenated, {total_chars:,} characters \
(about {est_tokens:,} tokens). Each file starts with a header line `{header}`.
- `files` (mapping path -> str): the text of each file, e.g. `files["{example_path}"]`.
- `llm_query(prompt: str) -> str`: ask a sub-LM ({sub_model}). It sees ONLY the prompt you pass, so \
put the text it must read into the prompt. Keep each prompt under about {sub_chars:,} characters.
- `llm_query_batched(prompts: list[str]) -> list[str]`: many sub-LM calls run concurrently; replies \
come back in order. Much faster than a loop of llm_query. A failed call returns a string starting \
with "Error:".
- `rlm_query(prompt: str, context: str | None = None) -> str`: a recursive RLM with its own REPL over \
`context` (default: the same context); use it for sub-problems that themselves need code. \
{depth_note}
- `FINAL(answer)`: finish with `answer` (converted to str). `FINAL_VAR(name)`: finish with the value \
of the variable called `name`.
- `SHOW_VARS()`: list the variables you have defined.
Printed output longer than {max_output_chars:,} characters is truncated (head and tail kept), so \
print summaries, counts and short excerpts, never the whole context. Standard-library modules \
(re, json, collections, ...) can be imported.

## How to work
1. Peek first: sizes, the file list, a few slices, to learn the structure.
2. Narrow down with code: `re.finditer`, keyword searches, splitting by file, line, section or \
header. Print positions and short windows around hits.
3. Partition and map: split the relevant text into chunks, ask sub-LMs about each chunk with \
`llm_query_batched`, collect the answers in variables, then combine them (in code or with one more \
sub-call).
4. Verify the candidate answer against the context before you finish.
Never guess what a block will print: write the code, end your reply, and read the real output on \
the next turn. Budgets are limited: prefer a few well-aimed calls over thousands of tiny ones.

## Finishing
When you know the answer, call `FINAL(answer)` in a ```repl block (or `FINAL_VAR(name)`), or reply \
with `FINAL(your answer)` as plain text in a reply that contains no code block. A FINAL written as \
text next to code is ignored, because you have not seen that code run yet. The answer should be \
complete and self-contained: it is shown to the user as is.
"""


CITATIONS_SECTION = """
## Searching and citing files
`search(query, paths=None, k=20)` returns the `k` lines of `files` that best match the words of \
`query` (plain words, the question itself will do; not a regex), best first, as \
`[(path, line_number, line_text), ...]`. `grep(pattern, paths=None, flags=0, max_hits=200)` returns every \
line matching a regex, in file order, in the same shape (`paths` a glob such as "*.py"; line numbers \
start at 1). `count(pattern, paths=None, flags=0)` returns how many lines match a regex, with no cap: \
to answer "how many", count with it, never by counting the lines you were shown. In code, \
`definitions(name, paths=None)` returns the lines defining a function, class or constant (same shape) \
and `callers(name, paths=None)` every call of it as `[(path, line_number, calling_function, line_text), \
...]`. \
Back each claim in your answer with the references it rests on, written as `path:line` or \
`path:first-last` (e.g. `{example_path}:12`), taken from what your code printed. After the run, rlm \
checks every reference against the loaded files and flags any that names no loaded file or a line \
past a file's end.
"""


WORKED_EXAMPLE = """
## A worked example
Question: "Which port does the billing service listen on?" First reply, search for the question's \
words and end the reply:
```repl
hits = search("Which port does the billing service listen on?")
for path, line, text in hits:
    print(f"{path}:{line}: {text}")
```
The next message shows what that really printed, best match first, for example \
`conf/services.txt:88: the billing service listens on port 8443`. Only then, second reply:
```repl
FINAL("8443 (conf/services.txt:88)")
```
If no line printed answers the question, search with other words or synonyms, or grep a regex. When the \
answer needs reading a lot of text, cut that text into chunks in a variable first, then ask sub-LMs about \
every chunk with one `llm_query_batched` call, each prompt holding the question and its chunk's text.
"""


def system_prompt(loaded: LoadedContext, sub_model: str, max_output_chars: int, sub_chars: int,
                  depth: int, max_depth: int, extra: str | None = None) -> str:
    """The root LM's system prompt for an RLM at ``depth`` (``max_depth``: the recursion limit)."""
    example = loaded.files[0].path if loaded.files else "<stdin>"
    if depth + 1 <= max_depth:
        depth_note = f"You are at depth {depth}; recursive RLMs are allowed down to depth {max_depth}."
    else:
        depth_note = "At this depth it behaves like llm_query (the recursion limit is reached)."
    text = SYSTEM_PROMPT.format(
        n_files=len(loaded.files), total_chars=loaded.total_chars, est_tokens=loaded.est_tokens,
        header=HEADER_TEMPLATE.format(path="PATH").strip(), example_path=example, sub_model=sub_model,
        sub_chars=sub_chars, depth_note=depth_note, max_output_chars=max_output_chars)
    text += CITATIONS_SECTION.format(example_path=example)
    text += WORKED_EXAMPLE
    if extra:
        text += "\n## Additional instructions from the user\n" + extra.strip() + "\n"
    return text


def first_message(question: str, loaded: LoadedContext, tree: str) -> str:
    """The first user message: the question and the context's metadata, never the context."""
    skipped = ""
    if loaded.skipped:
        skipped = f"\n{len(loaded.skipped)} file(s) were skipped when loading (binary, ignored or too large)."
    if any(f.pages for f in loaded.files):  # converted PDFs
        skipped += ("\nPDF text is split into pages by lines `--- page N ---`; cite a page as "
                    "`PATH p.N`.")
    return (
        f"Question: {question}\n\n"
        f"The context holds {len(loaded.files)} file(s), {loaded.total_chars:,} characters "
        f"(about {loaded.est_tokens:,} tokens).{skipped}\n"
        f"Files (path and size in characters):\n{tree}\n\n"
        "You have not looked at the context yet: do not answer before you have seen evidence.\n\n"
        "To start, search the context for the words of the question:\n```repl\n" + first_block(question) + "\n```"
    )


def truncate_output(text: str, limit: int, note: str = "characters omitted") -> str:
    """``text`` cut to at most about ``limit`` characters, head and tail kept, the omission stated
    as ``[... N <note> ...]``."""
    if len(text) <= limit:
        return text
    half = max(1, limit // 2)
    omitted = len(text) - 2 * half
    return f"{text[:half]}\n[... {omitted:,} {note} ...]\n{text[-half:]}"


def step_feedback(position: int, total: int, stdout: str, stderr: str, error: str | None,
                  notes: list[str], limit: int) -> str:
    """What the root LM is told about one executed block (output truncated to ``limit`` chars)."""
    parts = [f"Output of block {position} of {total}:"]
    out = stdout.rstrip("\n")
    err = stderr.rstrip("\n")
    if out:
        parts.append("```\n" + truncate_output(out, limit) + "\n```")
    if err:
        parts.append("stderr:\n```\n" + truncate_output(err, limit // 2) + "\n```")
    if not out and not err:
        parts.append("(no output)")
    if error:
        parts.append(f"Error: {error}")
    parts.extend(f"Note: {n}" for n in notes)
    return "\n".join(parts)


NUDGE = ("Your reply contained no ```repl code block and no FINAL(...). Write Python in a ```repl block "
         "to examine `context`, or, if you are sure, answer with FINAL(your answer).")
UNTAGGED = (" Fenced blocks without the `repl` tag are not run: open code blocks with ```repl on a line "
            "of its own.")
UNCLOSED = ("Note: your reply opened a ```repl block that was never closed (the reply may have been cut off), "
            "so that block was not run. Close every block with ``` on a line of its own, and keep replies short.")
FINAL_BESIDE_CODE = ("Note: the FINAL(...) you wrote outside a code block was ignored, because the same reply "
                     "contained code you had not yet seen run. Check the output above, then answer.")
REPEATED_FAILURE = ("This block is the same code you already ran, and it failed the same way. Do not repeat it: "
                    "print what the data actually looks like near the failure, then try a different approach.")
REPEATED_OUTPUT = ("This block is the same code you already ran, and it printed the same output again: repeating "
                   "it tells you nothing new. Use what it printed, or write different code (for example, search "
                   "with grep(...) for words from the question and print the lines it finds).")
LOWER_FINAL = ("Your reply wrote {word}(...) and no code. Write the answer as FINAL(your actual answer) in upper "
               "case (or FINAL_VAR(variable_name)), with the real value, not a placeholder.")
NOT_AN_ANSWER = ("Your FINAL(...) was not accepted: it is {what}, not an answer to the question. Read what your "
                 "code printed and answer in plain words, e.g. FINAL(\"the answer\").")
STALLED = "You have sent the same reply {count} times in a row, so more turns will not help"
LAST_CALL = ("{reason}. Do not write any more code. Reply now with your best answer, "
             "based only on what you found so far, in the form FINAL(your answer). If you could not find "
             "it, say what you found and what is missing.")

KEPT_ANSWER = " The first block kept an answer in the variable `answer`: {value}. FINAL_VAR(answer) answers with it."
MAX_KEPT_SHOWN = 300  # characters of the kept answer the last call shows


RAN_FIRST_BLOCK = ("Your reply had no code that runs, so rlm ran the first block for you. Read its output and "
                   "answer from it, or write your own ```repl block.")
RAN_FIRST_BLOCK_GUESS = ("Your FINAL(...) was not accepted: it holds a number or a file path that appears nowhere in "
                         "what you have read, so it is a guess. rlm ran the first block for you instead. Read its "
                         "output and answer from it, or write your own ```repl block.")
RAN_FIRST_BLOCK_ECHO = ("Your FINAL(...) was not accepted: it only repeats words of the question, written before you "
                        "read any output, so it is not an answer. rlm ran the first block for you instead. Read its "
                        "output and answer from it, or write your own ```repl block.")


EMPTY_BLOCK = " Your ```repl block was empty: write the code between the opening and the closing fence."
GUESSED_FINAL = ("Your FINAL(...) was not accepted: it holds a number or a file path that appears nowhere in what "
                 "you have read, and you wrote it before reading the output of your code, so it is a guess. Read "
                 "the output above, then answer from it.")


def continue_note(iteration: int, max_iterations: int, budget_line: str) -> str:
    """The line closing each feedback message: where the run stands."""
    return (f"\n[Iteration {iteration + 1} of {max_iterations} done; {budget_line}.] Continue: write the next "
            "```repl block, or finish with FINAL(...).")
