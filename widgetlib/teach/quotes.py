"""Quotes of the installed libraries' source, read from disk when a lesson runs, so what a lesson shows of
transformers or torch is what this machine runs (not what the docs of some version say).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SourceQuote", "quote_lines", "source_quote"]


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
