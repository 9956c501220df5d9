"""The one job schema and the message kinds between the runner (parent), the zygote and a measuring child, and the
folder of its own each process the runner starts is given (:data:`PROCESS_DIR_ENV`).

Every process speaks JSON lines. The parent sends exactly one job: the strategy name and the whole
:class:`~widgetlib.core.options.LoadOptions` dataclass (every field, by name), plus what only the child needs
(where its stderr and temporary files go, how many forwards to run). The child rebuilds ``LoadOptions`` with
:func:`decode_job`, so the same validation runs on both sides and no field can be forgotten on the way.

``PROTOCOL_VERSION`` is in every job and in the zygote's greeting. A zygote or spare child started by older
code (a learner who upgraded widgetlib in a running kernel) answers with its own version, and the runner
restarts it instead of using it.

>>> import json
>>> from widgetlib.core.options import LoadOptions
>>> job = encode_job("/ck", "manual_shards", LoadOptions(dtype="bfloat16", forward_tokens=4), forwards=3)
>>> strategy, options, extra = decode_job(json.loads(json.dumps(job)))
>>> strategy, options.dtype, options.forward_tokens, extra["forwards"]
('manual_shards', 'bfloat16', 4, 3)
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

from ..core.errors import OptionError
from ..core.options import LoadOptions
from ..core.registry import check_strategy

__all__ = [
    "MSG_CHECKED",
    "MSG_ERROR",
    "MSG_EVENT",
    "MSG_EXIT",
    "MSG_GPU",
    "MSG_HELLO",
    "MSG_READY",
    "MSG_RESULT",
    "MSG_ZYGOTE_READY",
    "PROCESS_DIR_ENV",
    "PROTOCOL_VERSION",
    "TORCH_CACHE_ENV",
    "decode_job",
    "encode_job",
    "remove_process_dir",
]

# Raise it whenever a message or the job changes shape.
PROTOCOL_VERSION = 4

# child -> parent
MSG_HELLO = "hello"  # the child exists (pid), imports done, waiting for its job
MSG_READY = "ready"  # warm-up done, baseline taken: t = 0 of the load
MSG_EVENT = "event"  # a step of the load ("shard 3/6 read")
MSG_GPU = "gpu"  # CUDA bytes allocated, when a GPU is used
MSG_RESULT = "result"  # the load and the forwards finished: the figures
MSG_ERROR = "error"  # the load failed: one sentence, a kind, maybe a traceback
# zygote -> parent
MSG_ZYGOTE_READY = "zygote_ready"  # imports done, accepting fork requests
MSG_EXIT = "exit"  # a forked child has exited (pid, exit code; negative = killed by that signal)
MSG_CHECKED = "checked"  # the answer to {"check": FOLDER}: the model class name, or the learner-facing error

# A zygote or spawned child gets a temporary folder of its own (made by the runner, named by this variable): its
# TMPDIR, and torch's compile cache. torch picks that cache's folder from TORCHINDUCTOR_CACHE_DIR, else
# <TMPDIR>/torchinductor_<user> (torch/_inductor/runtime/cache_dir_utils.py, cache_dir ~14 and default_cache_dir
# ~24), and creates it as soon as a modeling module imports torch._dynamo (torch/_dynamo/package.py ~1299, the
# DiskDynamoCache made at import): left to its default, every session left an empty torchinductor_<user>/ in the
# learner's TMPDIR.
# The process removes its folder when it exits; the runner removes it too, in case the process was killed.
# A measuring child points the cache into its run's own temporary folder once it has its job.
PROCESS_DIR_ENV = "OFFLOAD_LAB_PROCESS_DIR"
TORCH_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def remove_process_dir() -> None:
    """Remove this process's own temporary folder (``$OFFLOAD_LAB_PROCESS_DIR``), if it has one: the last thing
    a zygote or a spawned child does.

    >>> import os, tempfile
    >>> from unittest import mock
    >>> folder = tempfile.mkdtemp()
    >>> with mock.patch.dict(os.environ, {PROCESS_DIR_ENV: folder}):
    ...     remove_process_dir()
    >>> os.path.exists(folder)
    False
    """
    folder = os.environ.get(PROCESS_DIR_ENV)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


_PATH_FIELDS = {f.name for f in dataclasses.fields(LoadOptions) if "Path" in str(f.type)}


def encode_job(checkpoint: str, strategy: str, options: LoadOptions, **extra: Any) -> dict[str, Any]:
    """The job as a JSON-ready dict: protocol version, checkpoint, strategy, every LoadOptions field, extras.

    >>> encode_job("/ck", "normal", LoadOptions())["options"]["forward_tokens"]
    16
    """
    fields = {}
    for f in dataclasses.fields(LoadOptions):
        value = getattr(options, f.name)
        fields[f.name] = str(value) if isinstance(value, Path) else value
    return {
        "protocol": PROTOCOL_VERSION,
        "checkpoint": checkpoint,
        "strategy": strategy,
        "options": fields,
        **extra,
    }


def decode_job(job: dict[str, Any]) -> tuple[str, LoadOptions, dict[str, Any]]:
    """Rebuild (strategy, LoadOptions, the other keys) from a job, validating like the parent did.

    A job from other code (another protocol version) or with a field LoadOptions does not know is refused.

    >>> decode_job({"protocol": 1, "strategy": "normal", "options": {}})
    Traceback (most recent call last):
    ...
    widgetlib.core.errors.OptionError: the job speaks protocol 1 but this code speaks 4; restart the kernel so \
every process runs the same widgetlib.
    """
    version = job.get("protocol")
    if version != PROTOCOL_VERSION:
        raise OptionError(
            f"the job speaks protocol {version} but this code speaks {PROTOCOL_VERSION}; restart the kernel so "
            "every process runs the same widgetlib.",
            kind="protocol",
        )
    strategy = check_strategy(job["strategy"])
    known = {f.name for f in dataclasses.fields(LoadOptions)}
    unknown = set(job["options"]) - known
    if unknown:
        raise OptionError(f"the job carries unknown options {sorted(unknown)}; restart the kernel.", kind="protocol")
    values = {
        k: (Path(v) if k in _PATH_FIELDS and v is not None else v) for k, v in job["options"].items()
    }
    extra = {k: v for k, v in job.items() if k not in ("protocol", "strategy", "options")}
    return strategy, LoadOptions(**values), extra
