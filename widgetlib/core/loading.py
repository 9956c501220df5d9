"""The one entry to a bare load: look the strategy up in the registry, check the folder and the dtype, call its
loader. Nothing here measures (``widgetlib.run`` measures a load in its own process, by calling this there).

Apart from :mod:`widgetlib.core.strategies` (the loaders) and :mod:`widgetlib.core.registry` (which names them), so
that the registry can hold the loaders themselves and neither module imports the other back.
"""

from __future__ import annotations

from pathlib import Path

from .options import LoadOptions
from .registry import get_strategy
from .strategies import Emit, LoadResult, resolve_options

__all__ = ["load_model"]


def _no_emit(label: str, kind: str) -> None:
    pass


def load_model(
    folder: str | Path, strategy: str, options: LoadOptions | None = None, emit: Emit | None = None
) -> LoadResult:
    """Load the checkpoint in ``folder`` with ``strategy`` and return the model (in eval mode) and details.

    This is the bare load with no measurement; use ``widgetlib.run`` to measure it in its own process.

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> folder = make_checkpoint(size="5MB", shards=2)
    >>> steps = []
    >>> result = load_model(folder, "manual_shards", emit=lambda label, kind: steps.append(label))
    >>> steps[1:3]
    ['shard 1/2 read', 'shard 1/2 assigned']
    """
    loader = get_strategy(strategy).loader  # before any file is read: an unknown name fails in one sentence
    folder = Path(folder)
    return loader(folder, resolve_options(folder, options or LoadOptions()), emit or _no_emit)
