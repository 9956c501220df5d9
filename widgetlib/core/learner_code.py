"""A function the learner wrote, sent to a measuring process and run there as a strategy.

A function defined in a notebook cell cannot be imported by another process, so :func:`pack_function` sends
its *source* (``inspect.getsource``, which works for a cell because IPython keeps each cell's text in
``linecache``) with the global names it reads: a module by its name, an importable object by where it lives,
another function of the notebook by its own source, anything else pickled. :func:`unpack_function` rebuilds it
on the other side. The two strategies that run it (registered in :mod:`widgetlib.core.registry`, unlisted) are
:func:`load_learner_loader` (``loader(folder)`` returns the model) and :func:`load_learner_safe_load`
(``load(path)`` returns one ``.bin`` shard's tensors); both record which shards the learner's code read, as
``shard_read`` events, so a check judges what it did and not only what it returned.

>>> def double(x):
...     return 2 * x
>>> unpack_function(pack_function(double, "double"))(21)
42
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import dis
import functools
import importlib
import inspect
import json
import pickle
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import OptionError
from .hf_folder import read_shard, shard_files
from .options import LoadOptions
from .strategies import Emit, LoadResult, build_empty_model

__all__ = ["load_learner_loader", "load_learner_safe_load", "pack_function", "unpack_function"]


def _global_names(code: types.CodeType) -> list[str]:
    """The global names ``code`` (and the functions and comprehensions defined in it) reads, in order."""
    names: list[str] = []
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME") and instruction.argval not in names:
            names.append(instruction.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += [name for name in _global_names(const) if name not in names]
    return names


def _importable(value: Any) -> dict[str, str] | None:
    """``{"from": module, "attr": qualname}`` when importing that gives back ``value`` itself, else None."""
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or module == "__main__" or "<" in qualname:
        return None
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return None
    return {"from": module, "attr": qualname} if found is value else None


def _pack(fn: Callable[..., Any], label: str, depth: int) -> dict[str, Any]:
    if not isinstance(fn, types.FunctionType):
        raise OptionError(f"`{label}` is a {type(fn).__name__}, not a function written with def; write it as "
                          f"`def {label}(...):`.", kind="not_measurable")
    if fn.__name__ == "<lambda>":
        raise OptionError(f"`{label}` is a lambda, whose source cannot be cut out of its line; write it as "
                          f"`def {label}(...):`.", kind="not_measurable")
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        raise OptionError(f"The source of `{label}` cannot be found (inspect.getsource finds no cell or file that "
                          "defines it); run the cell that defines it again.", kind="not_measurable") from None
    cells = [cell.cell_contents for cell in fn.__closure__ or ()]
    values = dict(zip(fn.__code__.co_freevars, cells, strict=True))
    for name in _global_names(fn.__code__):
        if name in fn.__globals__:
            values.setdefault(name, fn.__globals__[name])
        elif not hasattr(builtins, name):
            raise OptionError(f"`{label}` uses `{name}`, which is not defined in this kernel; define it, or import "
                              "it inside the function.", kind="not_measurable")
    names: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        if isinstance(value, types.ModuleType):
            names[name] = {"module": value.__name__}
        elif (where := _importable(value)) is not None:
            names[name] = where
        elif isinstance(value, types.FunctionType) and depth < 5:
            names[name] = {"function": _pack(value, name, depth + 1)}
        else:
            try:
                names[name] = {"pickle": base64.b64encode(pickle.dumps(value)).decode()}
            except Exception:  # pickle raises many kinds; any of them means the value cannot travel
                raise OptionError(f"`{label}` uses `{name}` (a {type(value).__name__}), which cannot be sent to "
                                  "the process the check runs it in; create it inside the function.",
                                  kind="not_measurable") from None
    return {"name": fn.__name__, "source": source, "names": names}


def pack_function(fn: Callable[..., Any], label: str, **extra: Any) -> str:
    """``fn``'s source and the globals it reads, as JSON for :func:`unpack_function` in another process.
    ``label`` is the name the learner knows it by, for the one-sentence error when it cannot be sent; ``extra``
    travels beside it, for the strategy that runs it (``hostile=``: the file ``learner_safe_load`` tries last).

    >>> pack_function(print, "my_loader")
    Traceback (most recent call last):
    ...
    widgetlib.core.errors.OptionError: `my_loader` is a builtin_function_or_method, not a function written \
with def; write it as `def my_loader(...):`.
    """
    return json.dumps({**_pack(fn, label, 0), **extra})


def _unpack(packed: dict[str, Any]) -> Callable[..., Any]:
    namespace: dict[str, Any] = {"__name__": "__learner__", "__builtins__": builtins}
    for name, spec in packed["names"].items():
        if "module" in spec:
            namespace[name] = importlib.import_module(spec["module"])
        elif "from" in spec:
            value: Any = importlib.import_module(spec["from"])
            for part in spec["attr"].split("."):
                value = getattr(value, part)
            namespace[name] = value
        elif "function" in spec:
            namespace[name] = _unpack(spec["function"])
        else:
            namespace[name] = pickle.loads(base64.b64decode(spec["pickle"]))
    exec(compile(packed["source"], f"<{packed['name']}>", "exec"), namespace)  # the learner's own code
    return namespace[packed["name"]]


def unpack_function(code: str) -> Callable[..., Any]:
    """The function :func:`pack_function` packed, defined again here from its source and names.

    >>> import math
    >>> def area(r):
    ...     return math.pi * r * r
    >>> unpack_function(pack_function(area, "area"))(1) == math.pi
    True
    """
    return _unpack(json.loads(code))


# ------------------------------------------------------------------------------------- watching the reads


@contextlib.contextmanager
def _watch_reads(files: list[Path], emit: Emit) -> Iterator[list[str]]:
    """While the block runs, emit ``shard_read`` when one of ``files`` is read through ``read_shard``,
    ``safetensors.torch.load_file``, ``safetensors.safe_open`` or ``torch.load``, and ``shard_assigned`` after
    each ``load_state_dict``; yields the names read, in order.

    The module attributes are replaced, so a call through them is seen, the learner's included (their names are
    bound after this starts); a library that bound one at its own import (transformers binds ``safe_open``) is
    not the learner's reading and is not seen.
    """
    import safetensors
    import safetensors.torch
    import torch

    index = {path.resolve(): k for k, path in enumerate(files, 1)}
    read: list[str] = []
    depth = [0]

    def reading(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(path: Any, *args: Any, **kwargs: Any) -> Any:
            depth[0] += 1
            try:
                result = original(path, *args, **kwargs)
            finally:
                depth[0] -= 1
            k = index.get(Path(path).resolve()) if isinstance(path, (str, Path)) else None
            if k is not None and depth[0] == 0:  # a read inside another watched read is the same read
                read.append(files[k - 1].name)
                emit(f"shard {k}/{len(files)} read by your code ({files[k - 1].name})", "shard_read")
            return result
        return wrapper

    original_assign = torch.nn.Module.load_state_dict

    @functools.wraps(original_assign)
    def assigning(self: Any, state_dict: Any, *args: Any, **kwargs: Any) -> Any:
        result = original_assign(self, state_dict, *args, **kwargs)
        emit(f"load_state_dict: {len(state_dict)} tensors", "shard_assigned")
        return result

    patches = [(safetensors.torch, "load_file"), (safetensors, "safe_open"), (torch, "load")]
    saved = [(owner, name, getattr(owner, name)) for owner, name in patches]
    for owner, name, original in saved:
        setattr(owner, name, reading(original))
    torch.nn.Module.load_state_dict = assigning  # type: ignore[method-assign]
    try:
        yield read
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
        torch.nn.Module.load_state_dict = original_assign  # type: ignore[method-assign]


def _learner_function(options: LoadOptions) -> tuple[Callable[..., Any], dict[str, Any]]:
    if options.code is None:
        raise OptionError("this strategy needs code=, the learner's function packed by pack_function.",
                          kind="bad_option")
    payload = json.loads(options.code)
    return _unpack(payload), payload


def load_learner_loader(folder: Path, options: LoadOptions, emit: Emit) -> LoadResult:
    """The ``learner_loader`` strategy: call the learner's ``loader(folder)`` (``options.code``) and return the
    model it returns, its shard reads and assignments emitted as events.

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> def my_loader(folder):
    ...     model = build_empty_model(folder)
    ...     for path in shard_files(folder):
    ...         model.load_state_dict(read_shard(path), strict=False, assign=True)
    ...     return model
    >>> kinds = []
    >>> code = pack_function(my_loader, "my_loader")
    >>> _ = load_learner_loader(make_checkpoint(size="5MB", shards=2), LoadOptions(code=code),
    ...                         lambda label, kind: kinds.append(kind))
    >>> kinds
    ['shard_read', 'shard_assigned', 'shard_read', 'shard_assigned', 'loader_returned']
    """
    loader, payload = _learner_function(options)
    files = shard_files(folder)
    with _watch_reads(files, emit) as read:
        model = loader(Path(folder))
    emit(f"{payload['name']} returned", "loader_returned")
    if not hasattr(model, "named_parameters"):
        raise OptionError(f"{payload['name']} returned {type(model).__name__}; it should return the model.",
                          kind="bad_option")
    left = [name for name, p in model.named_parameters() if p.device.type == "meta"]
    if left:
        raise OptionError(f"{len(left)} parameter(s) are still on meta after {payload['name']} (e.g. {left[0]}): "
                          "some shard was not assigned.", kind="bad_option")
    return LoadResult(model.eval(), {"shards": len(files), "read": read})


def load_learner_safe_load(folder: Path, options: LoadOptions, emit: Emit) -> LoadResult:
    """The ``learner_safe_load`` strategy: read each ``.bin`` shard of ``folder`` with the learner's
    ``load(path)`` and fill an empty model with what it returns (so the forward shows whether it loaded them);
    then hand it ``payload["hostile"]`` (a pickle that runs code) and record what it did in
    ``details["hostile"]``: what it raised, or what it returned.

    >>> import torch
    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> def safe_load(path):
    ...     return torch.load(path, map_location="cpu", weights_only=True)
    >>> result = load_learner_safe_load(make_checkpoint(size="4MB", shards=2, format="bin"),
    ...                                 LoadOptions(code=pack_function(safe_load, "safe_load")), lambda l, k: None)
    >>> result.details
    {'shards': 2, 'hostile': {}}
    """
    import torch

    load, payload = _learner_function(options)
    model = build_empty_model(folder)
    emit("empty model built", "model_built")
    differs: list[str] = []
    files = shard_files(folder)
    for k, path in enumerate(files, 1):
        tensors = load(path)
        expected = read_shard(path)
        if not isinstance(tensors, dict) or set(tensors) != set(expected):
            differs.append(path.name)
        else:
            differs += [f"{path.name}: {name}" for name, t in expected.items()
                        if not (isinstance(tensors[name], torch.Tensor) and t.equal(tensors[name]))][:1]
            model.load_state_dict(tensors, strict=False, assign=True)
        emit(f"shard {k}/{len(files)} loaded by your code", "shard_read")
    hostile: dict[str, Any] = {}
    if payload.get("hostile"):
        try:
            returned = load(Path(payload["hostile"]))
        except Exception as exc:  # a refusal is what is asked; which exception, and its kind, is recorded
            hostile = {"raised": type(exc).__name__, "kind": getattr(exc, "kind", None)}
        else:
            hostile = {"returned": type(returned).__name__}
        emit("hostile file handed to your code", "phase")
    if differs:
        raise OptionError(f"{payload['name']} did not return the tensors read_shard reads from "
                          f"{differs[0]}: it should return the file's dict of tensors.", kind="bad_option")
    return LoadResult(model.eval(), {"shards": len(files), "hostile": hostile})
