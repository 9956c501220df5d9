"""Errors a learner can hit, each worded as one sentence: what was wrong, which file or value, what to do.

Every layer raises :class:`OffloadLabError` (or a subclass) for a mistake a learner can fix; the CLI prints its
message and exits non-zero, the widgets show it in place of a traceback. Anything else is a bug in Offload Lab.
"""

from __future__ import annotations

__all__ = ["CheckpointError", "OffloadLabError", "OptionError", "RunnerBusyError"]


class OffloadLabError(Exception):
    """A problem the learner can fix, described in one sentence.

    ``kind`` is a short machine-readable tag (``"missing_folder"``, ``"bad_size"``, ...) that tests and the
    widgets use; ``message`` is what a person reads.

    >>> err = OffloadLabError("The folder /tmp/nope does not exist; check the path.", kind="missing_folder")
    >>> str(err), err.kind
    ('The folder /tmp/nope does not exist; check the path.', 'missing_folder')
    """

    def __init__(self, message: str, *, kind: str = "error") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


class CheckpointError(OffloadLabError):
    """A checkpoint folder is missing, incomplete, corrupt or unsafe.

    >>> raise CheckpointError("x.safetensors is missing", kind="missing_shard")
    Traceback (most recent call last):
    ...
    widgetlib.core.errors.CheckpointError: x.safetensors is missing
    """


class OptionError(OffloadLabError, ValueError):
    """An option value (a size, a strategy name, a dtype, a budget) that cannot be used.

    >>> isinstance(OptionError("bad"), ValueError)
    True
    """


class RunnerBusyError(OffloadLabError):
    """Another measured run is in progress in this kernel; runs are never interleaved into one plot.

    >>> RunnerBusyError("busy").kind
    'busy'
    """

    def __init__(self, message: str, *, kind: str = "busy") -> None:
        super().__init__(message, kind=kind)
