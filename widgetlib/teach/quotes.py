"""Quotes of the installed libraries' source, read from disk when a lesson runs, so what a lesson shows of
transformers or torch is what this machine runs (not what the docs of some version say).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SourceQuote", "find_phrase", "find_source", "quote_lines", "source_quote"]


@dataclass(frozen=True)
class SourceQuote:
    """Lines of an installed library's source: the file, the first line's number, the text."""

    file: str
    line: int
    text: str

    def _repr_markdown_(self) -> str:
        return f"`{self.file}`, line {self.line}:\n\n```python\n{self.text}\n```"


def quote_lines(file: str | os.PathLike[str], line: int, *, before: int = 1, after: int = 3) -> SourceQuote:
    """Lines ``line - before`` to ``line + after`` (1-based) of ``file``, read from disk now.

    >>> import inspect
    >>> quote = quote_lines(__file__, inspect.getsourcelines(quote_lines)[1], before=0, after=0)
    >>> quote.text
    'def quote_lines(file: str | os.PathLike[str], line: int, *, before: int = 1, after: int = 3) -> SourceQuote:'
    """
    lines = Path(file).read_text(encoding="utf-8").splitlines()
    start = max(1, int(line) - before)
    end = min(len(lines), int(line) + after)
    return SourceQuote(str(file), start, "\n".join(lines[start - 1 : end]))


def source_quote(package: str, relative_path: str, pattern: str, *, before: int = 2, after: int = 2,
                 limit: int = 3) -> list[SourceQuote]:
    """Quote the installed ``package``'s ``relative_path`` around each line matching ``pattern`` (a regex).

    Read from the file on disk (not from memory, not from the docs), so the quote is what *this* machine runs.

    >>> quotes = source_quote("transformers", "modeling_utils.py", r"def from_pretrained", before=0, after=0)
    >>> quotes[0].text.strip().startswith("def from_pretrained")
    True
    """
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return []
    path = Path(next(iter(spec.submodule_search_locations))) / relative_path
    lines = path.read_text(encoding="utf-8").splitlines()
    regex = re.compile(pattern)
    quotes: list[SourceQuote] = []
    last_end = -1
    for number, line in enumerate(lines):
        if not regex.search(line) or number <= last_end:
            continue
        start, end = max(0, number - before), min(len(lines), number + after + 1)
        quotes.append(SourceQuote(str(path), start + 1, "\n".join(lines[start:end])))
        last_end = end - 1
        if len(quotes) >= limit:
            break
    return quotes


def find_source(package: str, relative_path: str, patterns: list[str] | tuple[str, ...], *, what: str,
                before: int = 2, after: int = 2) -> SourceQuote:
    """The first quote of the installed ``package``'s ``relative_path`` that any of ``patterns`` finds (regexes,
    tried in order: the wordings of the same step in the versions a lesson knows). ``what`` says, in words, what
    the lines do; when no pattern finds them, the ``LookupError`` says it, with the installed version, so a
    lesson fails with a sentence instead of a bare ``assert``.

    >>> find_source("transformers", "modeling_utils.py", [r"^no such line$", r"def from_pretrained"],
    ...             what="defines from_pretrained", before=0, after=0).text.strip().startswith("def from_pretrained")
    True
    >>> find_source("transformers", "modeling_utils.py", [r"^no such line$"], what="does the impossible")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    LookupError: transformers ... modeling_utils.py has no line that does the impossible ...
    """
    for pattern in patterns:
        quotes = source_quote(package, relative_path, pattern, before=before, after=after, limit=1)
        if quotes:
            return quotes[0]
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version(package)
    except PackageNotFoundError:
        installed = "(not installed)"
    raise LookupError(
        f"{package} {installed}: its {relative_path} has no line that {what} (searched for "
        + " or ".join(repr(p) for p in patterns)
        + "). This lesson was written against the versions it names; read that step in this version's source "
        "by hand, and tell the lab's maintainers what changed."
    )


def find_phrase(phrase: str | tuple[str, ...], packages: tuple[str, ...] = ("transformers", "accelerate"), *,
                before: int = 1, after: int = 1, limit: int = 3) -> list[SourceQuote]:
    """Quote each line of the installed ``packages``' Python files that holds ``phrase`` (ignoring case and
    backticks, which messages put around names and learners drop when they paste them), up to ``limit`` quotes.
    An error message split over several string literals is found by the part on one line: give the parts as a
    tuple, and a line holding any of them is quoted (one pass over the files, however many parts).

    >>> find_phrase("def from_pretrained", ("transformers",), before=0, after=0, limit=1)[0].text.strip()[:19]
    'def from_pretrained'
    >>> find_phrase(("no library says this", "nor this"), ("transformers",))
    []
    """
    import importlib.util

    wanted = [part.replace("`", "").lower() for part in ((phrase,) if isinstance(phrase, str) else phrase)]
    quotes: list[SourceQuote] = []
    for package in packages:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        for path in sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.py")):
            text = path.read_text(encoding="utf-8", errors="replace")
            if not any(part in text.replace("`", "").lower() for part in wanted):
                continue
            lines = text.splitlines()
            for number, line in enumerate(lines):
                if any(part in line.replace("`", "").lower() for part in wanted):
                    start, end = max(0, number - before), min(len(lines), number + after + 1)
                    quotes.append(SourceQuote(str(path), start + 1, "\n".join(lines[start:end])))
                    if len(quotes) >= limit:
                        return quotes
    return quotes
