"""A compact tree of the loaded files for the root LM's first message, bounded in characters.

Every size is in characters of decoded text (what the model's ``context`` holds), not bytes. The tree
shows every file while it fits in ``max_chars``; otherwise directories deeper than some level are
summarised on one line (``name/ … (N files, M chars)``), choosing the deepest level that fits; if even
the top level does not fit, its largest entries come first and the rest are counted on a last line.
Chains of single directories are joined (``src/main/java/``), as in most file browsers.
"""

from __future__ import annotations

from rlm_cli.context import FileEntry, estimate_tokens

INDENT = "  "


class _Dir:
    __slots__ = ("children", "files", "chars")

    def __init__(self) -> None:
        self.children: dict[str, _Dir | FileEntry] = {}
        self.files = 0
        self.chars = 0


def _split(path: str) -> list[str]:
    """Path components; an absolute path keeps its leading ``/`` on the first one."""
    parts = [p for p in path.split("/") if p]
    if path.startswith("/") and parts:
        parts[0] = "/" + parts[0]
    return parts or [path]


def _unique(children: dict, key: str) -> str:
    while key in children:  # a file and a directory of the same name, from different sources
        key += " "
    return key


def _build(files: list[FileEntry]) -> _Dir:
    root = _Dir()
    for f in files:
        node = root
        parts = _split(f.path)
        node.files += 1
        node.chars += f.chars
        for part in parts[:-1]:
            nxt = node.children.get(part)
            if not isinstance(nxt, _Dir):
                nxt = node.children.setdefault(part if nxt is None else _unique(node.children, part), _Dir())
            node = nxt
            node.files += 1
            node.chars += f.chars
        node.children[_unique(node.children, parts[-1])] = f
    return root


def _plural(n: int) -> str:
    return f"{n:,} file{'s' if n != 1 else ''}"


def _dir_label(name: str, node: _Dir) -> tuple[str, _Dir]:
    """Join single-directory chains: ``a/b/c/`` with the innermost node."""
    while len(node.children) == 1:
        (child_name, child), = node.children.items()
        if not isinstance(child, _Dir):
            break
        name, node = f"{name}/{child_name}", child
    return name + "/", node


def _entries(node: _Dir) -> list[tuple[str, _Dir | FileEntry]]:
    """Children in name order, directory chains joined: ``(label, node or file)``."""
    out: list[tuple[str, _Dir | FileEntry]] = []
    for name in sorted(node.children):
        child = node.children[name]
        out.append(_dir_label(name, child) if isinstance(child, _Dir) else (name, child))
    return out


def _line(label: str, child: _Dir | FileEntry, expanded: set[int]) -> str:
    if isinstance(child, _Dir):
        mark = "" if id(child) in expanded else "… "
        return f"{label} {mark}({_plural(child.files)}, {child.chars:,} chars)"
    return f"{label} {child.chars:,}"


def _render(node: _Dir, expanded: set[int], depth: int, out: list[str]) -> None:
    for label, child in _entries(node):
        out.append(INDENT * depth + _line(label, child, expanded))
        if isinstance(child, _Dir) and id(child) in expanded:
            _render(child, expanded, depth + 1, out)


def _expand_to(node: _Dir, depth: int, limit: int, expanded: set[int], frontier: list) -> None:
    """Expand directories above ``limit``; collect the first collapsed ones in ``frontier``."""
    for _, child in _entries(node):
        if isinstance(child, _Dir):
            if depth < limit:
                expanded.add(id(child))
                _expand_to(child, depth + 1, limit, expanded, frontier)
            else:
                frontier.append((child, depth))


def _fill(root: _Dir, limit: int, budget: int) -> set[int]:
    """Directories to list: all above ``limit``, then the largest collapsed ones while ``budget``
    (characters beyond the uniform rendering) allows."""
    expanded: set[int] = set()
    frontier: list[tuple[_Dir, int]] = []
    _expand_to(root, 0, limit, expanded, frontier)
    while frontier:
        frontier.sort(key=lambda item: item[0].chars)
        node, depth = frontier.pop()
        cost = sum(len(INDENT * (depth + 1)) + len(_line(label, child, expanded)) + 1
                   for label, child in _entries(node)) - 2  # minus the "… " mark
        if cost <= budget:
            budget -= cost
            expanded.add(id(node))
            frontier.extend((c, depth + 1) for _, c in _entries(node) if isinstance(c, _Dir))
    return expanded


def _max_depth(node: _Dir) -> int:
    """Levels of directories below ``node`` as displayed (joined chains count once)."""
    dirs = [c for _, c in _entries(node) if isinstance(c, _Dir)]
    return max((1 + _max_depth(c) for c in dirs), default=0)


def _top_level_cut(root: _Dir, header: str, max_chars: int) -> str:
    """Top-level entries, largest first, as many as fit, then a line counting the rest."""
    entries = []
    for name, child in root.children.items():
        if isinstance(child, _Dir):
            label, inner = _dir_label(name, child)
            entries.append((inner.chars, inner.files, f"{label} … ({_plural(inner.files)}, {inner.chars:,} chars)"))
        else:
            entries.append((child.chars, 1, f"{name} {child.chars:,}"))
    entries.sort(key=lambda e: -e[0])
    lines, used = [header], len(header)
    for i, (_, _, line) in enumerate(entries):
        rest = entries[i:]
        tail = f"… {len(rest):,} more entries ({sum(e[1] for e in rest):,} files, {sum(e[0] for e in rest):,} chars)"
        if used + 1 + len(line) + 1 + len(tail) > max_chars:
            lines.append(tail)
            break
        lines.append(line)
        used += 1 + len(line)
    return "\n".join(lines)


def render_tree(files: list[FileEntry], max_chars: int = 4000) -> str:
    """The loaded files as an indented tree with sizes in characters, at most ``max_chars`` characters.

    The first line gives the totals (files, characters, estimated tokens). Directory lines carry
    their file count and character total; ``…`` marks a directory whose contents are not listed.
    """
    total = sum(f.chars for f in files)
    header = (f"{_plural(len(files))}, {total:,} chars (~{estimate_tokens(total):,} tokens); "
              "sizes in characters")
    if not files:
        return "(no files loaded)"[:max_chars]
    root = _build(files)
    deepest = _max_depth(root)
    for limit in range(deepest, -1, -1):
        expanded: set[int] = set()
        _expand_to(root, 0, limit, expanded, [])
        out = [header]
        _render(root, expanded, 0, out)
        text = "\n".join(out)
        if len(text) <= max_chars:
            if limit < deepest:
                out = [header]
                _render(root, _fill(root, limit, max_chars - len(text)), 0, out)
                text = "\n".join(out)
            return text
    text = _top_level_cut(root, header, max_chars)
    if len(text) > max_chars:  # a tiny budget: cut, on a line boundary when there is one
        text = text[:max_chars]
        if "\n" in text:
            text = text[:text.rfind("\n")]
    return text
