"""Byte sizes: the one place where "300MB", "1.5GiB" and plain byte counts are parsed and printed.

Decimal units (KB, MB, GB, TB) are powers of 1000, binary units (KiB, MiB, GiB, TiB) powers of 1024, as on a
disk label and in ``free -h`` respectively. Figures shown to learners use decimal MB/GB, like file managers.
"""

from __future__ import annotations

import re

from .errors import OptionError

__all__ = ["format_bytes", "format_signed_bytes", "parse_size"]

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "t": 1000**4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$")


def parse_size(value: str | int | float, *, name: str = "size") -> int:
    """Return ``value`` as a whole number of bytes.

    Accepts ints (bytes), floats that are whole numbers, and strings such as ``"300MB"``, ``"1.5GiB"``,
    ``"2 GB"`` or ``"4096"``. ``name`` is the option being parsed; it appears in the error message.

    >>> parse_size("300MB"), parse_size("1.5GiB"), parse_size(4096), parse_size("2 gb")
    (300000000, 1610612736, 4096, 2000000000)
    >>> parse_size("lots", name="max_memory")
    Traceback (most recent call last):
    ...
    widgetlib.core.errors.OptionError: max_memory='lots' is not a size; write it like 300MB, 1.5GiB or 4096 (bytes).
    """
    if isinstance(value, bool):
        raise _size_error(value, name)
    if isinstance(value, int):
        if value < 0:
            raise _size_error(value, name)
        return value
    if isinstance(value, float):
        if value < 0 or not value.is_integer():
            raise _size_error(value, name)
        return int(value)
    if not isinstance(value, str):
        raise _size_error(value, name)
    match = _SIZE_RE.match(value)
    if not match or match.group(2).lower() not in _UNITS:
        raise _size_error(value, name)
    number, unit = match.groups()
    return int(round(float(number) * _UNITS[unit.lower()]))


def _size_error(value: object, name: str) -> OptionError:
    return OptionError(f"{name}={value!r} is not a size; write it like 300MB, 1.5GiB or 4096 (bytes).", kind="bad_size")


def format_bytes(n_bytes: int | float | None) -> str:
    """Return a short human reading of a byte count, in decimal units.

    >>> format_bytes(1_312_000_000), format_bytes(513_400_000), format_bytes(2048), format_bytes(None)
    ('1.31 GB', '513 MB', '2.0 kB', '–')
    """
    if n_bytes is None:
        return "–"
    n = float(n_bytes)
    sign = "-" if n < 0 else ""
    n = abs(n)
    if n >= 1000**3:
        return f"{sign}{n / 1000**3:.2f} GB"
    if n >= 1000**2:
        return f"{sign}{n / 1000**2:.0f} MB"
    if n >= 1000:
        return f"{sign}{n / 1000:.1f} kB"
    return f"{sign}{int(n)} B"


def format_signed_bytes(n_bytes: int | float | None) -> str:
    """A change in bytes, with its sign: what a load added above a baseline (a load stopped before it began
    can read a few kB below it, and says so rather than "+-41.0 kB").

    >>> format_signed_bytes(37_000_000), format_signed_bytes(-41_000), format_signed_bytes(None)
    ('+37 MB', '-41.0 kB', '–')
    """
    if n_bytes is None:
        return format_bytes(None)
    return format_bytes(n_bytes) if n_bytes < 0 else f"+{format_bytes(n_bytes)}"
