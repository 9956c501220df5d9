"""The four ways of loading a checkpoint that Offload Lab measures, as plain functions.

Each strategy is a real load of a Hugging Face causal-LM folder that ends in a model that runs forward, and
calls ``emit(label, kind)`` as it goes so a timeline can show where the memory went. Nothing here measures:
the registry (:mod:`widgetlib.core.registry`) names each loader, :func:`widgetlib.core.loading.load_model`
dispatches to it, and the runner (``widgetlib.measure.runner``) calls that inside a fresh child process and
samples it from outside. These functions import torch and transformers only when they run.

- ``normal`` — the plain PyTorch way: build the model with real random weights, read the whole state dict,
  ``load_state_dict``; two copies meet at the peak.
- ``low_cpu_mem_usage`` — ``from_pretrained(..., low_cpu_mem_usage=...)``; :func:`low_cpu_mem_usage_truth`
  reads the installed transformers to say what the flag does there.
- ``offload_folder`` — ``device_map="auto"`` + ``max_memory`` + ``offload_folder`` (transformers), or
  accelerate's ``init_empty_weights`` + ``load_checkpoint_and_dispatch`` (``offload_via="accelerate"``).
- ``manual_shards`` — read the index, build the model empty, then per shard: read, assign, release.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import CheckpointError, OffloadLabError, OptionError
from .hf_folder import inspect_checkpoint, read_shard, shard_files, weight_map
from .options import KEEP_DTYPE, LOAD_DTYPES, RUN_DEFAULTS, LoadOptions, torch_dtype
from .sizes import format_bytes

if TYPE_CHECKING:  # for annotations only; functions import torch where they use it
    import torch

__all__ = [
    "Emit",
    "LoadResult",
    "build_empty_model",
    "check_architecture",
    "check_dtype_usable",
    "device_map_summary",
    "forward_checksum",
    "forward_logits",
    "load_call",
    "load_from_pretrained",
    "load_manual_shards",
    "load_normal",
    "load_offload",
    "low_cpu_mem_usage_truth",
    "resolve_options",
]

Emit = Callable[[str, str], None]
"""``emit(label, kind)``: called at each step of a load ("shard 3/6 read", "shard_read")."""


@dataclass
class LoadResult:
    """A loaded model and what the strategy found out on the way (JSON-ready ``details``)."""

    model: Any
    details: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- helpers


def _target_dtype_name(folder: Path, options: LoadOptions) -> str:
    if options.dtype != KEEP_DTYPE:
        return options.dtype
    return _checkpoint_dtype_name(folder, inspect_checkpoint(folder).dtype)


def _checkpoint_dtype_name(folder: Path, dtype: str) -> str:
    if dtype not in LOAD_DTYPES:
        raise CheckpointError(
            f"{folder} holds {dtype} weights, which Offload Lab does not load; pick dtype='float32' or 'bfloat16'.",
            kind="bad_dtype",
        )
    return dtype


def check_dtype_usable(dtype_name: str) -> None:
    """Raise a learner-facing error when this machine cannot compute in ``dtype_name`` on the CPU.

    >>> check_dtype_usable("float32")  # float32 products work on every CPU torch runs on: nothing raised
    >>> import torch
    >>> from unittest import mock
    >>> with mock.patch.object(torch.Tensor, "__matmul__", side_effect=RuntimeError("no kernel for Half")):
    ...     check_dtype_usable("float16")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    widgetlib.core.errors.OptionError: dtype='float16' cannot be used ... CPU (no kernel for Half); use dtype='float32'.
    """
    import torch

    dtype = torch_dtype(dtype_name)
    with _said_as((RuntimeError, TypeError), lambda reason: OptionError(
        f"dtype={dtype_name!r} cannot be used for matrix products on this machine's CPU ({reason}); "
        "use dtype='float32'.", kind="dtype_unsupported",
    )):
        a = torch.ones(2, 2, dtype=dtype)
        (a @ a).sum().item()


@contextlib.contextmanager
def _said_as(catch: tuple[type[BaseException], ...], error: Callable[[str], OffloadLabError]) -> Iterator[None]:
    """Raise ``error(reason)``, the learner-facing sentence, for a library's exception of a ``catch`` type, where
    ``reason`` is the first line of what the library said (its traceback tells a learner nothing they can act on)."""
    try:
        yield
    except catch as exc:
        text = str(exc).strip().splitlines()
        raise error(text[0] if text else type(exc).__name__) from None


def _load_config(folder: Path) -> Any:
    from transformers import AutoConfig

    with _said_as((ValueError, KeyError, OSError), lambda reason: CheckpointError(
        f"transformers cannot read {folder / 'config.json'} ({reason}); check the file or upgrade transformers.",
        kind="unknown_architecture",
    )):
        return AutoConfig.from_pretrained(folder, local_files_only=True)


def _unknown_architecture(config: Any) -> CheckpointError:
    return CheckpointError(
        f"transformers {_version('transformers')} cannot build a causal LM for model_type="
        f"{getattr(config, 'model_type', None)!r}; use a causal-LM checkpoint or upgrade transformers.",
        kind="unknown_architecture",
    )


def _model_class(config: Any) -> Any:
    from transformers import AutoModelForCausalLM

    # Resolving the class up front turns "architecture unknown" into one sentence before any load.
    with _said_as((KeyError,), lambda _: _unknown_architecture(config)):
        return AutoModelForCausalLM._model_mapping[type(config)]


def _model_class_name(config: Any) -> str:
    """The name of the class :func:`_model_class` returns, found without importing its modeling module.

    The same lookup as the lazy mapping's (transformers/models/auto/auto_factory.py, _LazyAutoMapping.__getitem__,
    ~602), on the names it holds: importing a modeling module imports torch._dynamo, which creates torch's
    compile-cache folder in TMPDIR (see widgetlib.measure.protocol.TORCH_CACHE_ENV), and the runner calls this in
    the learner's kernel.
    """
    from transformers import AutoModelForCausalLM

    mapping = AutoModelForCausalLM._model_mapping
    if type(config) in mapping._extra_content:  # a class registered with AutoModelForCausalLM.register
        return mapping._extra_content[type(config)].__name__
    config_name = type(config).__name__
    first = mapping._reverse_config_mapping.get(config_name)
    others = [k for k, v in mapping._config_mapping.items() if v == config_name]
    for model_type in [first, *others]:
        if model_type in mapping._model_mapping:
            return mapping._model_mapping[model_type]
    raise _unknown_architecture(config)


def check_architecture(folder: str | Path) -> str:
    """Return the model class name transformers builds for ``folder``, or raise a learner-facing error.

    Cheap (reads config.json; the modeling code is not imported), so the runner calls it before starting anything.

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> check_architecture(make_checkpoint(size="5MB"))
    'LlamaForCausalLM'
    """
    return _model_class_name(_load_config(Path(folder)))


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def build_empty_model(folder: str | Path, *, how: str = "init_empty_weights", dtype: str = KEEP_DTYPE) -> Any:
    """Build the model of ``folder``'s config without allocating its weights.

    ``how="init_empty_weights"`` (accelerate) puts parameters on the meta device but keeps buffers real, so
    non-persistent buffers such as rotary ``inv_freq`` (which no checkpoint holds) are ready for forward.
    ``how="meta_device"`` (``with torch.device("meta")``) puts buffers on meta too: lesson 02 shows the forward
    that then fails.

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> model = build_empty_model(make_checkpoint(size="5MB"))
    >>> next(model.parameters()).device.type, next(model.buffers()).device.type
    ('meta', 'cpu')
    """
    import torch
    from accelerate import init_empty_weights

    folder = Path(folder)
    config = _load_config(folder)
    model_class = _model_class(config)
    dtype_name = _target_dtype_name(folder, LoadOptions(dtype=dtype))
    if how == "init_empty_weights":
        context: Any = init_empty_weights()
    elif how == "meta_device":
        context = torch.device("meta")
    else:
        raise OptionError(f"how={how!r} is not known; use 'init_empty_weights' or 'meta_device'.", kind="bad_option")
    with context:
        model = model_class._from_config(config, dtype=torch_dtype(dtype_name))
    return model.eval()


class _Conversions(NamedTuple):
    mapping: list[Any]  # in transformers' order, as from_pretrained passes it on
    renamings: list[Any]
    converters: list[Any]
    names: dict[str, bool]  # the model's state-dict names (rename_source_key asks `names.get(key) is not None`)


# Per model, read once (a shard-by-shard load asks for every shard); weak, so a model is not kept alive by it.
_CONVERSIONS: weakref.WeakKeyDictionary[Any, _Conversions] = weakref.WeakKeyDictionary()


def _conversions(model: Any) -> _Conversions:
    """transformers' own checkpoint conversions for ``model`` and its names.

    The same list ``from_pretrained`` applies (modeling_utils.py calls ``get_model_conversion_mapping``): the
    toolkit keeps no copy of its tables, so a model type transformers converts is converted here too.
    """
    if model not in _CONVERSIONS:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightConverter, WeightRenaming

        mapping = get_model_conversion_mapping(model)
        _CONVERSIONS[model] = _Conversions(
            mapping,
            [m for m in mapping if isinstance(m, WeightRenaming)],
            [m for m in mapping if isinstance(m, WeightConverter)],
            dict.fromkeys(model.state_dict(), True),  # names only: no tensors are held
        )
    return _CONVERSIONS[model]


def _model_name(model: Any, key: str) -> tuple[str, bool]:
    """The model's name for checkpoint tensor ``key`` as ``from_pretrained`` finds it (transformers' own
    ``rename_source_key``: its renamings for the model type, then the base-model prefix added or dropped), and
    whether transformers combines it with other tensors at load time (a ``WeightConverter``: a
    mixture-of-experts checkpoint's per-expert weights become one ``experts.gate_up_proj``). A name the model
    does not have comes back as it was, for load_state_dict to report.

    GPT-NeoX stores ``embed_out.`` for the model's ``lm_head.``; older hub checkpoints such as GPT-2's store
    ``h.0.attn...`` for ``transformer.h.0.attn...``.
    """
    from transformers.core_model_loading import rename_source_key

    conversions = _conversions(model)
    expected = conversions.names
    prefix = getattr(model, "base_model_prefix", "") or None
    renamed, converter_pattern = rename_source_key(key, conversions.renamings, conversions.converters, prefix,
                                                   expected)
    if renamed not in expected and key in expected:  # transformers' own fallback: the name as it was
        renamed, converter_pattern = rename_source_key(key, [], [], prefix, expected)
    if renamed not in expected:
        return key, False
    return renamed, converter_pattern is not None


def _match_keys(model: Any, state_dict: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Split a (partial) state dict into tensors under the model's own names and, per combined parameter (its
    first model name), the checkpoint tensors transformers combines into it (see :func:`_model_name`)."""
    direct: dict[str, Any] = {}
    combined: dict[str, dict[str, Any]] = {}
    for key, value in state_dict.items():
        name, is_combined = _model_name(model, key)
        if is_combined:
            combined.setdefault(name, {})[key] = value
        else:
            direct[name] = value
    return direct, combined


def _combine(model: Any, groups: Mapping[str, Mapping[str, Any]], dtype_name: str) -> set[str]:
    """Load checkpoint tensors that transformers combines (``groups``: per combined parameter, all its pieces,
    as :func:`_match_keys` splits them) into ``model`` with transformers' own
    ``convert_and_load_state_dict_in_model``, the function ``from_pretrained`` calls; returns the model names it
    filled."""
    from transformers.core_model_loading import convert_and_load_state_dict_in_model
    from transformers.modeling_utils import LoadStateDictConfig

    conversions = _conversions(model)
    config = LoadStateDictConfig(device_map={"": "cpu"}, dtype=torch_dtype(dtype_name),
                                 weight_mapping=conversions.mapping)
    pieces = {key: tensor for group in groups.values() for key, tensor in group.items()}
    info, _ = convert_and_load_state_dict_in_model(model, pieces, config)
    return set(conversions.names) - set(info.missing_keys)


def _tied_targets(model: Any) -> set[str]:
    """Names of parameters that are filled by tying (absent from checkpoints when the config ties them)."""
    config = model.config
    if not getattr(config, "tie_word_embeddings", False):
        return set()
    tied = getattr(model, "_tied_weights_keys", None) or {}
    return set(tied.keys()) if isinstance(tied, Mapping) else set(tied)


def _check_complete(model: Any, folder: Path, missing: set[str]) -> None:
    missing = {k for k in missing if k not in _tied_targets(model)}
    # Non-persistent buffers never come from a checkpoint; only parameters and persistent buffers count.
    if missing:
        names = ", ".join(sorted(missing)[:3])
        raise CheckpointError(
            f"{folder} is missing {len(missing)} tensor(s) the model needs (e.g. {names}); the index or a shard "
            "is incomplete, rebuild or re-download the checkpoint.",
            kind="index_mismatch",
        )


def _read(path: Path, emit: Emit, label: str, *, mmap: bool = False) -> dict[str, Any]:
    tensors = read_shard(path, mmap=mmap)
    emit(label, "shard_read")
    return tensors


def _page_in(tensors: Mapping[str, Any]) -> None:
    """Touch one byte in every 4 KiB page of each (memory-mapped) tensor, so its pages are resident now."""
    import torch

    for tensor in tensors.values():
        if tensor.numel() and tensor.is_contiguous():
            tensor.reshape(-1).view(torch.uint8)[::4096].sum()


def _convert(tensors: dict[str, Any], dtype_name: str) -> dict[str, Any]:
    dtype = torch_dtype(dtype_name)
    return {k: (v.to(dtype) if v.is_floating_point() and v.dtype != dtype else v) for k, v in tensors.items()}


# ------------------------------------------------------------------------------------------ strategies


def load_normal(folder: Path, options: LoadOptions, emit: Emit) -> LoadResult:
    """The ``normal`` strategy: build the model with random weights, read the whole state dict, then
    ``load_state_dict`` (two copies at the peak).

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> kinds = []
    >>> _ = load_normal(make_checkpoint(size="5MB"), LoadOptions(), lambda label, kind: kinds.append(kind))
    >>> kinds[:2], kinds[-1]
    (['phase', 'model_built'], 'state_dict_freed')
    """
    config = _load_config(folder)
    model_class = _model_class(config)
    dtype_name = _target_dtype_name(folder, options)
    emit("building the model with random weights", "phase")
    # The plain PyTorch way: every parameter is allocated and initialised before the checkpoint is read.
    model = model_class._from_config(config, dtype=torch_dtype(dtype_name))
    model.eval()
    emit("model built: copy 1 (random weights) in RAM", "model_built")
    files = shard_files(folder)
    state_dict: dict[str, torch.Tensor] = {}
    for k, path in enumerate(files, 1):
        state_dict.update(_read(path, emit, f"shard {k}/{len(files)} read"))
    emit("whole state dict in RAM: copy 2", "state_dict_read")
    direct, combined = _match_keys(model, _convert(state_dict, dtype_name))
    result = model.load_state_dict(direct, strict=False)
    missing = set(result.missing_keys)
    if combined:  # all pieces are here: transformers combines them (mixture-of-experts weights)
        missing -= _combine(model, combined, dtype_name)
    del direct, combined
    if _tied_targets(model):
        model.tie_weights()
    _check_complete(model, folder, missing)
    emit("load_state_dict done (weights copied into the model)", "weights_assigned")
    del state_dict, result
    gc.collect()
    emit("state dict freed", "state_dict_freed")
    return LoadResult(model, {"shards": len(files)})


def low_cpu_mem_usage_truth() -> dict[str, Any]:
    """Say what ``low_cpu_mem_usage`` does in the installed transformers, read from its own source.

    transformers 5.x lists the flag among arguments "Not used anymore" and pops it from the keyword arguments
    of ``from_pretrained`` without a word (meta-device loading is always on). The answer is
    :func:`widgetlib.core.from_pretrained_source.read_argument`'s verdict on the flag, with the version, the file
    and the line, so a learner can open it and check; where the source shows neither (another major version)
    ``honoured`` is None and the learner is told to measure. The source is read once per process.

    >>> truth = low_cpu_mem_usage_truth()
    >>> sorted(truth)
    ['evidence', 'honoured', 'source_file', 'source_line', 'transformers']
    """
    return dict(_low_cpu_mem_usage_truth())  # a copy: callers may add to it


@functools.cache
def _low_cpu_mem_usage_truth() -> dict[str, Any]:
    # Cached: the measuring child reads it once before its baseline (measure/child.py, import_libraries), so a
    # low_cpu_mem_usage load does not parse from_pretrained's source inside its measured window.
    from .from_pretrained_source import read_argument

    verdict = read_argument("low_cpu_mem_usage")
    version = _version("transformers")
    where = verdict.citations[0] if verdict.citations else None
    honoured = {"ignored": False, "used": True}.get(verdict.kind)
    if honoured is False:
        evidence = (f"transformers {version} from_pretrained pops low_cpu_mem_usage from its keyword arguments and "
                    "never reads it: meta-device loading is always on.")
    elif honoured:
        evidence = f"transformers {version} from_pretrained reads low_cpu_mem_usage: {verdict.says}"
    else:
        evidence = (f"transformers {version}: what from_pretrained does with low_cpu_mem_usage was not found in its "
                    "source; measure True and False to see what it does.")
    return {
        "transformers": version,
        "honoured": honoured,
        "source_file": where.path if where and honoured is not None else None,
        "source_line": where.line if where and honoured is not None else None,
        "evidence": evidence,
    }


def load_from_pretrained(folder: Path, options: LoadOptions, emit: Emit) -> LoadResult:
    """The ``low_cpu_mem_usage`` strategy: plain ``from_pretrained`` with the flag as given, and what the
    installed transformers does with it (:func:`low_cpu_mem_usage_truth`) in the details.

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> result = load_from_pretrained(make_checkpoint(size="5MB"), LoadOptions(), lambda label, kind: None)
    >>> result.details["low_cpu_mem_usage"], "honoured" in result.details["low_cpu_mem_usage_truth"]
    (True, True)
    """
    from transformers import AutoModelForCausalLM

    _model_class(_load_config(folder))
    dtype_name = _target_dtype_name(folder, options)
    truth = low_cpu_mem_usage_truth()
    emit(f"from_pretrained(low_cpu_mem_usage={options.low_cpu_mem_usage}) called", "phase")
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        low_cpu_mem_usage=options.low_cpu_mem_usage,
        dtype=torch_dtype(dtype_name),
        local_files_only=True,
    )
    model.eval()
    emit("from_pretrained returned", "weights_assigned")
    return LoadResult(model, {"low_cpu_mem_usage": options.low_cpu_mem_usage, "low_cpu_mem_usage_truth": truth})


def load_call(folder: Path, options: LoadOptions, emit: Emit) -> LoadResult:
    """The ``from_pretrained_call`` strategy: run the learner's ``from_pretrained(...)`` line (``options.call``)
    as written, on ``folder``, and record what it said.

    The checkpoint stands in for their model name and, when the call gives an ``offload_folder``, a folder inside
    the run's own stands in for theirs (not made beforehand, so whether transformers makes it is seen). A name
    the line calls from_pretrained on that is no transformers class (``model_class``) is read as
    ``AutoModelForCausalLM``, as :func:`widgetlib.core.from_pretrained_source.read_call` reads it. Every warning and
    transformers log record at WARNING or above during the call is kept in ``details["warnings"]``.

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> call = "AutoModelForCausalLM.from_pretrained(p, torch_dtype=torch.bfloat16)"
    >>> result = load_call(make_checkpoint(size="5MB"), LoadOptions(call=call), lambda label, kind: None)
    >>> result.details["called_on"], result.details["model_class"], result.details["dtype"]
    ('AutoModelForCausalLM', 'LlamaForCausalLM', 'bfloat16')
    """
    import logging
    import warnings

    import transformers
    from transformers.utils import logging as hf_logging

    from .calls import call_values, parse_call

    if options.call is None:
        raise OptionError("the from_pretrained_call strategy needs call='from_pretrained(...)'.", kind="bad_option")
    call = parse_call(options.call)
    name = call.class_name
    model_class = transformers.AutoModelForCausalLM
    if name and name[:1].isupper():
        model_class = getattr(transformers, name, None)
        if model_class is None or not hasattr(model_class, "from_pretrained"):
            raise OptionError(f"{name} is not a class the installed transformers {_version('transformers')} has; "
                              "call from_pretrained on AutoModelForCausalLM or your model's class.",
                              kind="bad_option")
    target = Path(options.offload_folder) / "as_written" if options.offload_folder is not None else None
    args, kwargs = call_values(call, folder, target)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("transformers")
    verbosity = hf_logging.get_verbosity()
    # The child runs at ERROR: the call's own warnings are what is asked. (transformers' warning_once says a
    # thing once per process: a measured child is a fresh fork of a zygote that never made this call.)
    hf_logging.set_verbosity_warning()
    logger.addHandler(handler)
    emit(f"{model_class.__name__}.from_pretrained(...) called", "phase")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loaded = model_class.from_pretrained(*args, **kwargs)
    finally:
        logger.removeHandler(handler)
        hf_logging.set_verbosity(verbosity)
    model = loaded[0] if isinstance(loaded, tuple) else loaded  # output_loading_info=True returns a pair
    model.eval()
    emit("from_pretrained returned", "weights_assigned")
    details = {
        "call": call.source,
        "called_on": model_class.__name__,
        "model_class": type(model).__name__,
        "dtype": str(model.dtype).removeprefix("torch."),
        "hf_device_map": getattr(model, "hf_device_map", None) is not None,
        "offload_folder_made": target.exists() if target is not None else None,
        "warnings": list(dict.fromkeys([str(w.message) for w in caught] + [r.getMessage() for r in records])),
    }
    return LoadResult(model, details)


def _max_memory(options: LoadOptions) -> dict[Any, int]:
    if options.max_memory_bytes is None:
        raise OptionError(
            "the offload_folder strategy needs max_memory (the RAM weights may fill, e.g. max_memory='300MB').",
            kind="bad_option",
        )
    max_memory: dict[Any, int] = {"cpu": options.max_memory_bytes}
    if options.gpu_max_memory_bytes:
        import torch

        if torch.cuda.is_available():
            max_memory[0] = options.gpu_max_memory_bytes
    return max_memory


def load_offload(folder: Path, options: LoadOptions, emit: Emit) -> LoadResult:
    """The ``offload_folder`` strategy: RAM up to ``max_memory_bytes``, the rest to ``offload_folder``, through
    ``from_pretrained(device_map="auto")`` or accelerate's ``load_checkpoint_and_dispatch`` (``offload_via``).

    >>> import tempfile
    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> options = LoadOptions(max_memory_bytes=2_000_000, offload_folder=Path(tempfile.mkdtemp()))
    >>> result = load_offload(make_checkpoint(size="5MB"), options, lambda label, kind: None)
    >>> result.details["max_memory_bytes"], sorted(device_map_summary(result.model))
    ({'cpu': 2000000}, ['cpu', 'disk'])
    """
    import torch

    if options.offload_folder is None:
        raise OptionError("the offload_folder strategy needs an offload_folder path.", kind="bad_option")
    config = _load_config(folder)
    model_class = _model_class(config)
    dtype = torch_dtype(_target_dtype_name(folder, options))
    max_memory = _max_memory(options)
    offload_folder = str(options.offload_folder)
    if options.offload_via == "from_pretrained":
        from transformers import AutoModelForCausalLM

        emit("from_pretrained(device_map='auto', max_memory, offload_folder) called", "phase")
        model = AutoModelForCausalLM.from_pretrained(
            folder,
            device_map="auto",
            max_memory=max_memory,
            offload_folder=offload_folder,
            dtype=dtype,
            local_files_only=True,
        )
        emit("from_pretrained returned: weights placed", "dispatch")
    else:
        from accelerate import infer_auto_device_map, init_empty_weights, load_checkpoint_and_dispatch

        emit("init_empty_weights: model built on meta", "phase")
        with init_empty_weights():
            model = model_class._from_config(config, dtype=dtype)
        if _tied_targets(model):
            model.tie_weights()
        device_map = infer_auto_device_map(
            model,
            max_memory=max_memory,
            no_split_module_classes=list(model._no_split_modules or []),
            dtype=dtype,
        )
        emit("device map computed", "phase")
        model = load_checkpoint_and_dispatch(
            model, str(folder), device_map=device_map, offload_folder=offload_folder, dtype=dtype
        )
        emit("load_checkpoint_and_dispatch returned", "dispatch")
    model.eval()
    details = {"offload_via": options.offload_via, "max_memory_bytes": {str(k): v for k, v in max_memory.items()}}
    if torch.cuda.is_available() and options.gpu_max_memory_bytes:
        details["cuda_device"] = torch.cuda.get_device_name(0)
    return LoadResult(model, details)


def load_manual_shards(folder: Path, options: LoadOptions, emit: Emit) -> LoadResult:
    """The ``manual_shards`` strategy: an empty model, then per shard read, assign (``assign=True``: no second
    copy), release; with ``offload_and_reload`` every shard goes to ``scratch_folder`` and is read back.

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> labels = []
    >>> _ = load_manual_shards(make_checkpoint(size="5MB", shards=2), LoadOptions(), lambda l, k: labels.append(l))
    >>> labels[1:4]
    ['shard 1/2 read', 'shard 1/2 assigned', 'shard 1/2 dict released']
    """
    files = shard_files(folder)
    dtype_name = _target_dtype_name(folder, options)
    convert_to = dtype_name  # _convert leaves tensors already in this dtype untouched
    # init_empty_weights, not torch.device("meta"): buffers such as rotary inv_freq stay real (see lesson 02).
    model = build_empty_model(folder, dtype=dtype_name)
    emit("empty model built (weights on meta, buffers real)", "model_built")
    missing = {name for name, p in model.named_parameters() if p.device.type == "meta"}
    details: dict[str, Any] = {"shards": len(files), "offload_and_reload": options.offload_and_reload}
    n = len(files)
    if options.offload_and_reload:
        from safetensors.torch import load_file, save_file

        if options.scratch_folder is None:
            raise OptionError("offload_and_reload needs a scratch_folder to write shards to.", kind="bad_option")
        scratch = Path(options.scratch_folder)
        written: list[Path] = []
        for k, path in enumerate(files, 1):
            tensors = _read(path, emit, f"shard {k}/{n} read")
            target = scratch / f"reload-{k:05d}.safetensors"
            save_file({name: t.contiguous() for name, t in tensors.items()}, target)
            written.append(target)
            del tensors
            emit(f"shard {k}/{n} written to disk and freed", "shard_freed")
        details["scratch_bytes"] = sum(p.stat().st_size for p in written)
        everything: dict[str, Any] = {}
        for k, target in enumerate(written, 1):
            everything.update(load_file(target))
            emit(f"shard {k}/{n} loaded back", "shard_read")
        direct, combined = _match_keys(model, _convert(everything, convert_to))
        model.load_state_dict(direct, strict=False, assign=True)
        missing -= set(direct)
        if combined:
            missing -= _combine(model, combined, convert_to)
        del direct, combined
        emit("all shards assigned", "shard_assigned")
        del everything
        gc.collect()
    else:
        # How many checkpoint tensors go into each combined parameter, from the index (or the headers).
        pieces_expected = Counter(name for name, combined in map(functools.partial(_model_name, model),
                                                                 weight_map(folder)) if combined)
        pending: dict[str, dict[str, Any]] = {}
        details["held_for_combining_peak_bytes"] = 0
        for k, path in enumerate(files, 1):
            # Memory-mapped, then paged in: the shard's bytes become resident (file-backed, straight from the
            # page cache, no copy) now, so the plot shows the staircase and the forward pass pays nothing later.
            # A copy into fresh memory (what offload_and_reload does) costs a page fault per 4 KiB on top.
            mapped = read_shard(path, mmap=True)
            _page_in(mapped)
            emit(f"shard {k}/{n} read", "shard_read")
            tensors, combined = _match_keys(model, _convert(mapped, convert_to))
            del mapped
            # assign=True makes the loaded tensors the parameters: no second copy is made.
            model.load_state_dict(tensors, strict=False, assign=True)
            missing -= set(tensors)
            emit(f"shard {k}/{n} assigned", "shard_assigned")
            # Pieces of a combined parameter wait until the last of them has been read (they may sit in several
            # shards), then transformers combines them: that held memory is part of a shard-by-shard load.
            for name, pieces in combined.items():
                pending.setdefault(name, {}).update(pieces)
            complete = [name for name, pieces in pending.items() if len(pieces) == pieces_expected[name]]
            if complete:
                missing -= _combine(model, {name: pending.pop(name) for name in complete}, convert_to)
            held_bytes = sum(t.nbytes for pieces in pending.values() for t in pieces.values())
            details["held_for_combining_peak_bytes"] = max(details["held_for_combining_peak_bytes"], held_bytes)
            if held_bytes:
                emit(f"shard {k}/{n}: {format_bytes(held_bytes)} of pieces held until the rest are read",
                     "pieces_held")
            # The shard's dict goes; its tensors live on as parameters. No gc.collect(): nothing here is in a
            # reference cycle, and a full collection over transformers' heap costs ~0.3 s a shard.
            del tensors, combined
            emit(f"shard {k}/{n} dict released", "shard_freed")
    if _tied_targets(model):
        model.tie_weights()
    still_meta = {name for name, p in model.named_parameters() if p.device.type == "meta"}
    _check_complete(model, folder, missing & still_meta)
    return LoadResult(model.eval(), details)


def resolve_options(folder: str | Path, options: LoadOptions) -> LoadOptions:
    """Check ``folder`` (its index and shard headers) and the dtype before a load, and return ``options`` with
    ``dtype="keep"`` replaced by the checkpoint's own dtype, so no loader reads the headers again for it.

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> resolve_options(make_checkpoint(size="5MB", dtype="bfloat16"), LoadOptions()).dtype
    'bfloat16'
    """
    folder = Path(folder)
    info = inspect_checkpoint(folder)  # validates the folder, its index and shard headers first
    if options.dtype == KEEP_DTYPE:
        options = replace(options, dtype=_checkpoint_dtype_name(folder, info.dtype))
    check_dtype_usable(options.dtype)
    return options


def forward_input(model: Any, tokens: int = RUN_DEFAULTS.forward_tokens) -> torch.Tensor:
    """The fixed input every strategy's model runs: ``tokens`` deterministic ids within the vocabulary.

    >>> import types, torch
    >>> fake = types.SimpleNamespace(config=types.SimpleNamespace(vocab_size=100))
    >>> forward_input(fake, 4).tolist()
    [[13, 32, 51, 70]]
    """
    import torch

    vocab = int(model.config.vocab_size)
    return ((torch.arange(tokens, dtype=torch.long) * 7919 + 13) % vocab).unsqueeze(0)


# How many of a forward's logits a Report keeps (evenly spaced over every token's row): enough to say by how
# much two runs' logits differ when their checksums do not match, small enough for every Report's JSON.
LOGITS_SAMPLE_SIZE = 256


def forward_logits(model: Any, tokens: int = RUN_DEFAULTS.forward_tokens) -> tuple[str, list[float], float]:
    """Run one forward pass on :func:`forward_input`: (sha256 of the float32 logits, an evenly spaced sample of
    :data:`LOGITS_SAMPLE_SIZE` of them, seconds).

    Two runs whose checksums differ can still agree to float rounding (a fused MoE expert runs another
    kernel than its pieces did); the samples say by how much they differ.

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> model = load_from_pretrained(make_checkpoint(size="5MB"), LoadOptions(), lambda label, kind: None).model
    >>> sha, sample, seconds = forward_logits(model)
    >>> len(sha), len(sample), all(isinstance(v, float) for v in sample), seconds > 0
    (64, 256, True, True)
    """
    import torch

    ids = forward_input(model, tokens)
    start = time.perf_counter()
    with torch.no_grad():
        logits = model(ids).logits
    seconds = time.perf_counter() - start
    flat = logits.detach().to("cpu", torch.float32).contiguous().reshape(-1)
    picks = torch.linspace(0, flat.numel() - 1, min(LOGITS_SAMPLE_SIZE, flat.numel())).round().long()
    return hashlib.sha256(flat.numpy().tobytes()).hexdigest(), flat[picks].tolist(), seconds


def forward_checksum(model: Any, tokens: int = RUN_DEFAULTS.forward_tokens) -> tuple[str, float]:
    """Run one forward pass on :func:`forward_input` and return (sha256 of the float32 logits, seconds).

    The same weights give bit-identical logits whichever way they were loaded; the seconds are the price of
    offloading (weights read back from disk during forward).

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> model = load_from_pretrained(make_checkpoint(size="5MB"), LoadOptions(), lambda label, kind: None).model
    >>> sha, seconds = forward_checksum(model)
    >>> len(sha), seconds > 0
    (64, True)
    """
    sha, _, seconds = forward_logits(model, tokens)
    return sha, seconds


def device_map_summary(model: Any) -> dict[str, dict[str, int]]:
    """Count tensors and bytes per place (``cpu``, ``disk``, ``cuda:0``, ``meta``) for a loaded model.

    For a model dispatched with a device map, the place is the map's entry for the tensor's module (offloaded
    tensors sit on the meta device until forward pulls them in); otherwise it is the tensor's own device.

    >>> import torch
    >>> device_map_summary(torch.nn.Linear(4, 2))
    {'cpu': {'tensors': 2, 'bytes': 40}}
    """
    device_map: Mapping[str, Any] = getattr(model, "hf_device_map", None) or {}
    summary: dict[str, dict[str, int]] = {}
    seen: set[int] = set()
    tensors = list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers())
    for name, tensor in tensors:
        if id(tensor) in seen:
            continue  # a tied weight is one tensor
        seen.add(id(tensor))
        place = _place(name, device_map) if device_map else None
        if place is None:
            place = str(tensor.device)
        entry = summary.setdefault(place, {"tensors": 0, "bytes": 0})
        entry["tensors"] += 1
        entry["bytes"] += tensor.numel() * tensor.element_size()
    return summary


def _place(name: str, device_map: Mapping[str, Any]) -> str | None:
    parts = name.split(".")
    for cut in range(len(parts), -1, -1):
        prefix = ".".join(parts[:cut])
        if prefix in device_map:
            value = device_map[prefix]
            return f"cuda:{value}" if isinstance(value, int) else str(value)
    return None
