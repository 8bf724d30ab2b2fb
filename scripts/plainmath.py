#!/usr/bin/env python3
r"""Write the notebooks' math so that it renders the same wherever a student reads it.

    python scripts/plainmath.py chapters/*.ipynb exercises/*.ipynb

The website (Sphinx, MathJax), JupyterLab with jupyterlab-myst (KaTeX), Colab and GitHub's preview
each typeset a notebook's math differently:

- Custom macros: KaTeX reads a ``\def`` only in the formula that makes it, so the book's macros
  (``_config.yml``, ``mathjax3_config``) were errors in JupyterLab.  They are expanded here into
  plain LaTeX (``\norm{\emb{\tau}}`` becomes ``\lVert \mathbf{w}_{\tau} \rVert``), from
  ``_config.yml``'s table, so no notebook needs a macro.
- Numbering: jupyterlab-myst numbers every ``$$`` block, beside the book's ``\tag{2.1}``.
  Display math is written ``$$\begin{equation*}`` ... ``\end{equation*}$$``: still ``$$``
  math for Colab, GitHub and Sphinx, and an unnumbered environment for jupyterlab-myst, so the
  ``\tag`` is the only number everywhere.  A ``$$ ... $$ (label)`` equation (whose
  number only Sphinx knows) gets the chapter's next ``\tag{N.k}`` and its ``{eq}`` references
  read ``(N.k)``.

Only markdown cells change, and only their math; the notebook is read and written at once
(other cells may be edited by others at the same time).  Running it twice changes nothing.
``scripts/nbtool.py`` applies the same conversion in ``py2nb`` and ``sync``;
``tests/test_conventions.py`` fails while a notebook needs it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
# the first line of the cell that defined the macros with \def before they were expanded
OLD_MACRO_CELL = (
    "<!-- The book's math macros (generated from _config.yml by scripts/nbtool.py sync) -->"
)
# what reads the next token as its argument: a macro's expansion there must be one group
TAKES_ARGUMENT = re.compile(
    r"([_^]|\\(?:dot|ddot|hat|bar|tilde|vec|widehat|widetilde|overline|underline|sqrt|frac"
    r"|dfrac|tfrac|mathbf|mathrm|mathcal|mathbb|boldsymbol|operatorname|text))\s*$"
)
BEGIN, END = r"$$\begin{equation*}", r"\end{equation*}$$"


def macros() -> dict[str, tuple[str, int]]:
    """``{name: (definition, number of arguments)}`` from _config.yml's mathjax3_config."""
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    table = config["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"]
    out = {}
    for name, value in table.items():
        if isinstance(value, str):
            out[name] = (value, 0)
        elif isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
            out[name] = (value[0], value[1])
        else:
            raise ValueError(
                f"_config.yml: macro {name!r} must be a string or [definition, n_args], "
                f"got {value!r}"
            )
    return out


def _argument(text: str, at: int) -> tuple[str, int]:
    """The TeX argument starting at ``text[at:]`` (after spaces): a balanced ``{...}`` group
    (returned without its braces), a control word, or one character; and the index after it."""
    while at < len(text) and text[at] == " ":
        at += 1
    if at >= len(text):
        raise ValueError(f"a macro argument is missing at the end of {text!r}")
    if text[at] == "{":
        depth, end = 0, at
        while end < len(text):
            if text[end] == "\\":
                end += 2  # an escaped character (\{, \}) does not count
                continue
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                return text[at + 1 : end], end + 1
            end += 1
        raise ValueError(f"unbalanced braces in a macro argument: {text[at : at + 60]!r}")
    word = re.match(r"\\[A-Za-z]+|\\.|.", text[at:], re.S).group(0)
    return word, at + len(word)


def expand_macros(text: str, table: dict[str, tuple[str, int]] | None = None) -> str:
    r"""``text`` with every macro of ``table`` (default: _config.yml's) replaced by its
    definition, arguments substituted, nested uses included (``\norm{\emb{u}}``)."""
    table = macros() if table is None else table
    if not table:
        return text
    names = "|".join(sorted(map(re.escape, table), key=len, reverse=True))
    pattern = re.compile(r"\\(" + names + r")(?![A-Za-z])")
    for _ in range(50):  # a definition may use another macro
        match = pattern.search(text)
        if match is None:
            return text
        out, at = [], 0
        for match in pattern.finditer(text):
            if match.start() < at:
                continue  # inside an argument already consumed
            definition, n_args = table[match.group(1)]
            out.append(text[at : match.start()])
            at = match.end()
            arguments = []
            for _k in range(n_args):
                argument, at = _argument(text, at)
                arguments.append(argument)
            body = definition
            for k, argument in enumerate(arguments, start=1):
                body = body.replace(f"#{k}", argument)
            if re.search(r"\\[A-Za-z]+$", body) and at < len(text) and text[at].isalpha():
                body += " "  # a definition ending in a control word must not merge with a letter
            if TAKES_ARGUMENT.search("".join(out)):
                body = "{" + body + "}"  # an argument (\dot\query): one group, as meant
            out.append(body)
        out.append(text[at:])
        text = "".join(out)
    raise ValueError("macro expansion does not terminate (a macro that uses itself?)")


def _tags(text: str, chapter: str) -> list[int]:
    return [int(k) for k in re.findall(r"\\tag\{" + re.escape(chapter) + r"\.(\d+)\}", text)]


def display_math_to_equation(text: str, chapter: str | None = None) -> tuple[str, dict[str, str]]:
    r"""Every ``$$ ... $$`` display (its own lines, or one line) becomes an unnumbered
    ``equation*`` environment inside the ``$$``, indentation kept.  ``$$ ... $$ (label)`` gets
    ``\tag{chapter.k}`` (k after the largest tag of that chapter in ``text``); returns the text and
    ``{label: "(chapter.k)"}`` for the ``{eq}`` references."""
    lines = text.split("\n")
    out, labels, fence, directives = [], {}, None, []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        indent = line[: len(line) - len(line.lstrip())]
        opening = re.match(r"^(`{3,}|~{3,})(.*)$", stripped)
        if fence is not None:
            if stripped.startswith(fence) and stripped.strip("`~") == "":
                fence = None
            out.append(line)
            i += 1
            continue
        if opening:
            marker, info = opening.group(1), opening.group(2).strip()
            if info.startswith("{"):
                directives.append(marker)  # a directive: its body is markdown
            elif not info and directives and marker.startswith(directives[-1]):
                directives.pop()  # the directive's closing fence
            else:
                fence = marker  # a code block: left alone
            out.append(line)
            i += 1
            continue
        if stripped.startswith(BEGIN):  # written already: copied up to its end
            while i < len(lines) and not lines[i].rstrip().endswith(END):
                out.append(lines[i])
                i += 1
            if i == len(lines):
                raise ValueError(f"{BEGIN} without {END} in: {text[:80]!r}")
            out.append(lines[i])
            i += 1
            continue
        if not stripped.startswith("$$"):
            out.append(line)
            i += 1
            continue
        rest = stripped[2:]
        if "$$" in rest:  # $$ ... $$ on one line
            body, after = rest.split("$$", 1)
            body_lines, i = [indent + body.strip()], i + 1
        else:
            body_lines, i = ([indent + rest.strip()] if rest.strip() else []), i + 1
            while i < len(lines) and "$$" not in lines[i]:
                body_lines.append(lines[i])
                i += 1
            if i == len(lines):
                raise ValueError(f"unclosed $$ in: {text[:80]!r}")
            before, after = lines[i].split("$$", 1)
            if before.strip():
                body_lines.append(before.rstrip())
            i += 1
        after = after.strip()
        label = re.fullmatch(r"\((\S+)\)", after)
        if label:
            if chapter is None:
                raise ValueError(f"a labelled equation ({label.group(1)}) needs the chapter number")
            number = max(_tags("\n".join(out + lines), chapter), default=0) + 1
            body_lines.append(f"{indent}\\tag{{{chapter}.{number}}}")
            labels[label.group(1)] = f"({chapter}.{number})"
            after = ""
        out.append(indent + BEGIN)
        out.extend(body_lines)
        out.append(indent + END + (" " + after if after else ""))
    return "\n".join(out), labels


def convert_markdown(source: str, chapter: str | None = None, table=None):
    """A markdown cell's source with its macros expanded and its display math unnumbered."""
    text, labels = display_math_to_equation(source, chapter)
    return expand_macros(text, table), labels


def convert_notebook(nb, chapter: str | None = None, table=None) -> int:
    """Convert every markdown cell of ``nb`` in place (and drop the old ``\\def`` macro cell);
    returns how many cells changed."""
    table = macros() if table is None else table
    changed, labels = 0, {}
    kept = [
        c
        for c in nb.cells
        if not (c.cell_type == "markdown" and c.source.startswith(OLD_MACRO_CELL))
    ]
    changed, nb.cells = len(nb.cells) - len(kept), kept
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            new, found = convert_markdown(cell.source, chapter, table)
            labels.update(found)
            if new != cell.source:
                cell.source, changed = new, changed + 1
    for cell in nb.cells:
        if cell.cell_type == "markdown" and labels:
            new = re.sub(
                r"\{eq\}`([^`]+)`", lambda m: labels.get(m.group(1), m.group(0)), cell.source
            )
            if new != cell.source:
                cell.source, changed = new, changed + 1
    return changed


def chapter_of(path: Path) -> str | None:
    """ "2" for chapters/02_the_identity.ipynb (the number tags take)."""
    match = re.match(r"(\d+)_", Path(path).name)
    return str(int(match.group(1))) if match else None


def main(paths) -> None:
    table = macros()
    for path in map(Path, paths):
        nb = nbformat.read(path, as_version=4)
        if convert_notebook(nb, chapter_of(path), table):
            nbformat.validate(nb)
            path.write_text(nbformat.writes(nb) + "\n")
            print(f"converted {path}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
