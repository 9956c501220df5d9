"""The verdict an exercise check returns, and the helpers every check and lesson table shares: a
:class:`Verdict` says whether an answer is right and *why*; :func:`unanswered` / :func:`not_answered` handle an
exercise still shipped blank (``...``); ``fmt`` writes bytes as a learner reads them.

With ``OFFLOAD_LAB_STRICT_CHECKS=1`` (set by ``tests/test_lessons.py``) a wrong answer raises instead, so a
lesson whose reference answer stopped being true fails in CI. No torch; ``widgetlib.teach`` re-exports it all.

>>> Verdict(True, "right").ok, str(Verdict(False, "wrong"))
(True, '✘ wrong')
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.sizes import format_bytes
from ..measure.columns import COLUMNS

__all__ = ["STRICT_ENV", "Verdict", "fmt", "not_answered", "unanswered"]

STRICT_ENV = "OFFLOAD_LAB_STRICT_CHECKS"

fmt = format_bytes
"""Bytes as a learner reads them (decimal units): ``fmt(1_312_000_000) == '1.31 GB'``."""


@dataclass(frozen=True)
class Verdict:
    """The answer to an exercise: right or not, and why. Shows as one Markdown line in a notebook.

    ``answered=False`` is an exercise still shipped blank (``...``): not wrong, *not answered yet*.

    >>> str(Verdict(False, "write a number", answered=False))
    '… not answered yet: write a number'
    """

    ok: bool
    message: str
    answered: bool = True

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if not self.answered:
            return f"… not answered yet: {self.message}"
        return f"{'✔' if self.ok else '✘'} {self.message}"

    def _repr_markdown_(self) -> str:
        if not self.answered:
            return f"✏️ **not answered yet**: {self.message}"
        return f"{'✅ **Right.**' if self.ok else '❌ **Not yet.**'} {self.message}"


def _verdict(ok: bool, message: str) -> Verdict:
    if not ok and os.environ.get(STRICT_ENV) == "1":
        raise AssertionError(f"exercise check failed: {message}")
    return Verdict(bool(ok), message)


# Wrong tries so far in this kernel, per exercise: a first wrong answer gets a hint, a later one the answer.
_WRONG_TRIES: Counter[str] = Counter()


def _wrong(exercise: str, reason: str, hint: str, answer: str) -> Verdict:
    """A wrong answer to ``exercise`` that teaches: the first wrong try says why it is wrong and gives a hint;
    from the second on, the reason is followed by the measured ``answer`` instead (strict mode raises either way).

    >>> _WRONG_TRIES.clear()
    >>> [_wrong("ex", "Not bytes.", "multiply.", "It is 4 kB.").message for _ in range(2)]
    ['Not bytes. Hint: multiply.', 'Not bytes. It is 4 kB.']
    """
    _WRONG_TRIES[exercise] += 1
    return _verdict(False, f"{reason} Hint: {hint}" if _WRONG_TRIES[exercise] == 1 else f"{reason} {answer}")


def unanswered(answer: Any) -> bool:
    """True when ``answer`` is still the blank ``...`` an exercise ships with (or holds one, as a value of a
    dict or an item of a list/set/tuple).

    >>> unanswered(...), unanswered({"a": ..., "b": True}), unanswered({"a": False}), unanswered(0)
    (True, True, False, False)
    """
    if answer is Ellipsis:
        return True
    if isinstance(answer, Mapping):
        return any(value is Ellipsis for value in answer.values())
    if isinstance(answer, (list, tuple, set, frozenset)):
        return any(item is Ellipsis for item in answer)
    return False


def not_answered(hint: str) -> Verdict:
    """The verdict for a blank exercise: a hint, never an error (not even under ``OFFLOAD_LAB_STRICT_CHECKS``).

    >>> not_answered("replace `...` with a number").answered
    False
    """
    return Verdict(False, hint, answered=False)


def _ratio(n: float | None) -> str:
    """A ratio to the checkpoint as every table prints it (the report columns' format: ``"2.00x"``)."""
    return "–" if n is None else COLUMNS["peak_ratio"].format(n)
