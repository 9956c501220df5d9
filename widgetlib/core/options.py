"""What a load may vary, each fact written once: the dtypes, the weight formats, the offload modes,
:class:`LoadOptions`, and the default of every run option and checkpoint setting.

Everything else iterates or reads these: the checkpoint reader and writer (dtype codes, bytes per number), the
estimates, the loaders, the registry's per-strategy options, ``run``/``start``'s signature, the CLI and the
widgets. Nothing here imports torch (:func:`torch_dtype` does, when called), so the protocol, the runner and
the panel can use it in a light process.

Names: an option a learner passes takes a size as text or a number and is named for the concept
(``max_memory="300MB"``); the parsed figure is a byte count and says so (``LoadOptions.max_memory_bytes``).

>>> DTYPES["bfloat16"].bytes_per_number, DTYPES["bfloat16"].safetensors
(2, 'BF16')
>>> DTYPE_CHOICES
('keep', 'float32', 'bfloat16', 'float16')
>>> RUN_DEFAULTS.forwards, STRATEGY_OPTIONS["offload_via"]
(3, 'from_pretrained')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import OptionError

if TYPE_CHECKING:
    import torch

__all__ = [
    "BYTES_PER_NUMBER",
    "CHECKPOINT_DEFAULTS",
    "DTYPES",
    "DTYPE_CHOICES",
    "FORMATS",
    "KEEP_DTYPE",
    "LOAD_DTYPES",
    "OFFLOAD_VIA",
    "RUN_DEFAULTS",
    "STRATEGY_OPTIONS",
    "CheckpointDefaults",
    "DType",
    "LoadOptions",
    "RunDefaults",
    "bytes_per_number",
    "dtype_from_safetensors",
    "torch_dtype",
]

# ------------------------------------------------------------------------------------------------ dtypes


@dataclass(frozen=True)
class DType:
    """One tensor dtype: ``name`` is torch's (``getattr(torch, name)``, and what learners see everywhere),
    ``safetensors`` its code in a safetensors header, ``bytes_per_number`` torch's ``itemsize``; ``loads`` says
    whether Offload Lab builds checkpoints in it and loads and computes in it.

    >>> DType("float32", "F32", 4, loads=True).loads
    True
    """

    name: str
    safetensors: str
    bytes_per_number: int
    loads: bool = False


# The one dtype table. accelerate derives a dtype's size from the digits at the end of its name
# (accelerate/utils/modeling.py, dtype_byte_size, ~153), with exceptions for bool and float8; written out here
# because this module must read without torch, and the exceptions (bool, float8_*, float4_e2m1fn_x2: 1 byte
# each) would be longer than the table. tests/test_options.py checks every entry against torch's itemsize and
# safetensors' own code table (safetensors/torch.py, _TYPES). The first three are the dtypes Offload Lab loads.
DTYPES: dict[str, DType] = {
    d.name: d
    for d in (
        DType("float32", "F32", 4, loads=True),
        DType("bfloat16", "BF16", 2, loads=True),
        DType("float16", "F16", 2, loads=True),
        DType("float64", "F64", 8),
        DType("int64", "I64", 8),
        DType("int32", "I32", 4),
        DType("int16", "I16", 2),
        DType("int8", "I8", 1),
        DType("uint64", "U64", 8),
        DType("uint32", "U32", 4),
        DType("uint16", "U16", 2),
        DType("uint8", "U8", 1),
        DType("bool", "BOOL", 1),
        DType("float8_e4m3fn", "F8_E4M3", 1),
        DType("float8_e5m2", "F8_E5M2", 1),
        DType("float8_e4m3fnuz", "F8_E4M3FNUZ", 1),
        DType("float8_e5m2fnuz", "F8_E5M2FNUZ", 1),
        DType("float8_e8m0fnu", "F8_E8M0", 1),
        DType("float4_e2m1fn_x2", "F4", 1),  # two 4-bit numbers per byte; the header's offsets give the bytes
        DType("complex64", "C64", 8),
    )
}

LOAD_DTYPES: tuple[str, ...] = tuple(name for name, d in DTYPES.items() if d.loads)
"""The dtypes Offload Lab builds checkpoints in and loads models in: ``('float32', 'bfloat16', 'float16')``."""

KEEP_DTYPE = "keep"
"""``dtype="keep"``: load in the checkpoint's own dtype."""

DTYPE_CHOICES: tuple[str, ...] = (KEEP_DTYPE, *LOAD_DTYPES)

# What one number takes in RAM in each dtype Offload Lab loads (lesson 00 multiplies parameters by it).
BYTES_PER_NUMBER: dict[str, int] = {name: DTYPES[name].bytes_per_number for name in LOAD_DTYPES}

_BY_SAFETENSORS_CODE = {d.safetensors: d.name for d in DTYPES.values()}


def dtype_from_safetensors(code: str) -> str:
    """The dtype name (torch's) of a safetensors header code; an unknown code lower-cased, so it still reads.

    >>> dtype_from_safetensors("BF16"), dtype_from_safetensors("F8_E4M3"), dtype_from_safetensors("X9")
    ('bfloat16', 'float8_e4m3fn', 'x9')
    """
    return _BY_SAFETENSORS_CODE.get(code, code.lower())


def bytes_per_number(dtype: str, default: int = 4) -> int:
    """Bytes one number takes in ``dtype`` (``default`` for a dtype the table does not know).

    >>> bytes_per_number("float16"), bytes_per_number("int8"), bytes_per_number("unknown")
    (2, 1, 4)
    """
    entry = DTYPES.get(dtype)
    return entry.bytes_per_number if entry is not None else default


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype called ``name`` in the table (imports torch).

    >>> str(torch_dtype("bfloat16"))
    'torch.bfloat16'
    """
    import torch

    if name not in DTYPES:
        raise OptionError(f"dtype={name!r} is not a dtype; use one of {', '.join(LOAD_DTYPES)}.", kind="bad_dtype")
    return getattr(torch, name)


# --------------------------------------------------------------------------------------- formats, modes

FORMATS: tuple[str, ...] = ("safetensors", "bin")
"""The weight formats a checkpoint folder holds: ``model*.safetensors`` or pickled ``pytorch_model*.bin``."""

OFFLOAD_VIA: tuple[str, ...] = ("from_pretrained", "accelerate")
"""How the offload_folder strategy offloads: transformers' ``from_pretrained(device_map="auto", ...)``, or
accelerate's ``init_empty_weights`` + ``load_checkpoint_and_dispatch``."""


# ------------------------------------------------------------------------------------------- defaults


@dataclass(frozen=True)
class RunDefaults:
    """The default of every option of ``widgetlib.run`` / ``start`` (and so of ``offload-lab load`` and the
    widgets): the signature, the CLI and the registry's :data:`STRATEGY_OPTIONS` all read :data:`RUN_DEFAULTS`.

    >>> RunDefaults().dtype
    'keep'
    """

    dtype: str = KEEP_DTYPE
    max_memory: str | int | None = None  # offload_folder: None = half the checkpoint (runner)
    offload_folder: str | Path | None = None  # offload_folder: None = a temporary folder
    offload_via: str = OFFLOAD_VIA[0]
    budget: str | int | None = None
    cold_cache: bool = False
    cold_forward: bool = False  # drop the pages again after the load: the forwards read from disk
    forwards: int = 3
    forward_tokens: int = 16
    low_cpu_mem_usage: bool = True
    offload_and_reload: bool = False
    gpu_max_memory: str | int | None = None
    call: str | None = None  # from_pretrained_call: the learner's from_pretrained(...) line
    code: str | None = None  # learner_loader, learner_safe_load: the learner's function (core/learner_code.py)
    threads: int | None = None  # None = torch's own default
    interval_s: float = 0.01


RUN_DEFAULTS = RunDefaults()

# The run options only some strategies use (a strategy lists the ones it accepts in the registry), with the
# value that means "not given": check_options refuses any other value for a strategy that does not accept it.
STRATEGY_OPTIONS: dict[str, Any] = {
    name: getattr(RUN_DEFAULTS, name)
    for name in ("max_memory", "offload_folder", "offload_via", "gpu_max_memory", "low_cpu_mem_usage",
                 "offload_and_reload", "call", "code")
}


@dataclass(frozen=True)
class CheckpointDefaults:
    """The defaults of ``make_checkpoint`` (and ``offload-lab make-checkpoint``, the widgets' build box).

    >>> CheckpointDefaults().format
    'safetensors'
    """

    size: str = "250MB"
    format: str = FORMATS[0]
    dtype: str = LOAD_DTYPES[0]
    seed: int = 0


CHECKPOINT_DEFAULTS = CheckpointDefaults()


# -------------------------------------------------------------------------------------------- LoadOptions


@dataclass(frozen=True)
class LoadOptions:
    """What a load may vary besides the strategy (the loader's side of the run options, sizes parsed).

    ``max_memory_bytes`` is the RAM the ``offload_folder`` strategy may fill with weights before the rest goes
    to disk; ``offload_folder`` is where it goes (the runner makes a temporary one when none is given);
    ``gpu_max_memory_bytes`` lets ``device_map`` place layers on CUDA device 0 where there is one.
    ``offload_and_reload`` runs the seed notes' scheme in ``manual_shards`` (every shard written to
    ``scratch_folder`` and read back at the end). ``call`` is a learner's ``from_pretrained(...)`` line, which
    the ``from_pretrained_call`` strategy runs as written (:mod:`widgetlib.core.calls`). ``code`` is a function the
    learner wrote, packed by :func:`widgetlib.core.learner_code.pack_function`, which the ``learner_loader`` and
    ``learner_safe_load`` strategies run (an exercise check runs them).

    >>> LoadOptions(dtype="bfloat16").dtype
    'bfloat16'
    >>> LoadOptions(dtype="int3")
    Traceback (most recent call last):
    ...
    widgetlib.core.errors.OptionError: dtype='int3' is not a dtype Offload Lab loads; use one of keep, \
float32, bfloat16, float16.
    """

    dtype: str = RUN_DEFAULTS.dtype
    max_memory_bytes: int | None = None
    offload_folder: Path | None = None
    offload_via: str = RUN_DEFAULTS.offload_via
    low_cpu_mem_usage: bool = RUN_DEFAULTS.low_cpu_mem_usage
    offload_and_reload: bool = RUN_DEFAULTS.offload_and_reload
    scratch_folder: Path | None = None
    gpu_max_memory_bytes: int | None = None
    forward_tokens: int = RUN_DEFAULTS.forward_tokens
    call: str | None = RUN_DEFAULTS.call
    code: str | None = RUN_DEFAULTS.code

    def __post_init__(self) -> None:
        if self.dtype not in DTYPE_CHOICES:
            raise OptionError(
                f"dtype={self.dtype!r} is not a dtype Offload Lab loads; use one of {', '.join(DTYPE_CHOICES)}.",
                kind="bad_dtype",
            )
        if self.offload_via not in OFFLOAD_VIA:
            raise OptionError(
                f"offload_via={self.offload_via!r} is not known; use one of {', '.join(OFFLOAD_VIA)}.",
                kind="bad_option",
            )
        if self.forward_tokens < 1:
            raise OptionError(f"forward_tokens={self.forward_tokens} must be at least 1.", kind="bad_option")
