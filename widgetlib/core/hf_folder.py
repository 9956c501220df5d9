"""Reading any Hugging Face causal-LM checkpoint folder: headers, index, shards. No torch import to read them.

:func:`inspect_checkpoint` reads ``config.json``, the index and only the safetensors headers (``.bin`` files are
memory-mapped through torch, imported then) and reports format, dtype, parameters, shard sizes and the largest
tensor, raising a :class:`~widgetlib.core.errors.CheckpointError` naming the path for everything that can be
wrong with a folder. :func:`checkpoint_folder` is the one place a checkpoint argument becomes a folder (a path,
or a hub id in the local Hugging Face cache). :func:`read_shard` loads a shard's tensors (torch, imported
when called). Nothing here ever writes into a folder it reads.

Building synthetic checkpoints and their cache is :mod:`widgetlib.core.checkpoints`, which re-exports these
names.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import pickle
import re
import struct
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CheckpointError
from .hub import hub_cache_dir, looks_like_repo_id, not_cached_error, resolve_cached_model
from .options import dtype_from_safetensors

if TYPE_CHECKING:
    import torch

__all__ = [
    "CheckpointInfo",
    "ShardInfo",
    "checkpoint_folder",
    "inspect_checkpoint",
    "read_shard",
    "shard_files",
    "tensor_bytes",
    "weight_map",
]

_SAFETENSORS_WEIGHTS = "model.safetensors"
_SAFETENSORS_INDEX = "model.safetensors.index.json"
_BIN_WEIGHTS = "pytorch_model.bin"
_BIN_INDEX = "pytorch_model.bin.index.json"
# Hugging Face's own order of preference: a single file before an index, safetensors before pickle.
_WEIGHT_LAYOUTS = (
    ("safetensors", _SAFETENSORS_WEIGHTS, None),
    ("safetensors", None, _SAFETENSORS_INDEX),
    ("bin", _BIN_WEIGHTS, None),
    ("bin", None, _BIN_INDEX),
)
_EXPECTED_WEIGHTS = f"{_SAFETENSORS_WEIGHTS}, {_SAFETENSORS_INDEX}, {_BIN_WEIGHTS} or {_BIN_INDEX}"

# The safetensors library refuses headers above 100 MB; a bigger length field means a damaged file.
_MAX_HEADER_BYTES = 100_000_000

# ------------------------------------------------------------------------------------------------------------
# Reading and inspecting


@dataclass(frozen=True)
class ShardInfo:
    """One weights file: its name in the folder, its size on disk, and the tensors it holds.

    >>> ShardInfo("model.safetensors", 1_000_128, 1_000_000, 3).tensor_bytes
    1000000
    """

    file: str
    file_bytes: int
    tensor_bytes: int
    tensors: int


@dataclass(frozen=True)
class CheckpointInfo:
    """What :func:`inspect_checkpoint` found in a checkpoint folder (all sizes in bytes).

    >>> shard = ShardInfo("model.safetensors", 4_096, 4_000, 2)
    >>> info = CheckpointInfo(Path("/tmp/ckpt"), "safetensors", "float32", {"float32": 4_000}, 1_000, 4_000,
    ...                       (shard,), None, shard, "lm_head.weight", 2_000, "llama", ("LlamaForCausalLM",),
    ...                       False)
    >>> info.to_dict()["folder"], info.to_dict()["shards"][0]["file"]
    ('/tmp/ckpt', 'model.safetensors')
    """

    folder: Path
    format: str
    dtype: str
    dtypes: dict[str, int]
    parameters: int
    total_bytes: int
    shards: tuple[ShardInfo, ...]
    index_file: str | None
    largest_shard: ShardInfo
    largest_tensor: str
    largest_tensor_bytes: int
    model_type: str | None
    architectures: tuple[str, ...]
    tie_word_embeddings: bool

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (paths as strings, tuples as lists).

        >>> shard = ShardInfo("a.bin", 10, 8, 1)
        >>> CheckpointInfo(Path("x"), "bin", "float16", {"float16": 8}, 4, 8, (shard,), None, shard, "w", 8,
        ...                None, (), True).to_dict()["largest_shard"]
        {'file': 'a.bin', 'file_bytes': 10, 'tensor_bytes': 8, 'tensors': 1}
        """
        data = asdict(self)
        data["folder"] = str(self.folder)
        data["shards"] = [asdict(shard) for shard in self.shards]
        data["architectures"] = list(self.architectures)
        return data


@dataclass(frozen=True)
class _Layout:
    folder: Path
    format: str
    index_file: str | None  # file name in folder
    weight_map: dict[str, str]  # from the index; empty for a single file
    files: list[str]  # in index order


def _check_folder(path: Path) -> None:
    if not path.exists():
        raise CheckpointError(
            f"The checkpoint folder {path} does not exist; check the path or build one with "
            "make_checkpoint().",
            kind="missing_folder",
        )
    if not path.is_dir():
        raise CheckpointError(
            f"{path} is a file, not a checkpoint folder; pass the folder that holds config.json and the "
            "weights.",
            kind="not_a_checkpoint",
        )


def checkpoint_folder(checkpoint: str | os.PathLike[str]) -> Path:
    """Turn what a learner passed as a checkpoint into its folder: the one place every entry point goes through.

    A path that exists is used as it is (a local folder always wins, as in ``from_pretrained``). Otherwise a
    name written like a hub id (``"gpt2"``, ``"Qwen/Qwen2.5-0.5B"``) is looked up, offline, in the local
    Hugging Face cache (:mod:`widgetlib.core.hub`) and its snapshot folder is returned; a model that is not
    cached, or only partly, raises ``kind="not_cached"`` with the command that would download it. Anything
    else that does not exist raises ``kind="missing_folder"``.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     checkpoint_folder(tmp) == Path(tmp)
    True
    >>> try:
    ...     checkpoint_folder("/no/such/folder")
    ... except CheckpointError as err:
    ...     print(err.kind)
    missing_folder
    """
    path = Path(checkpoint).expanduser()
    if path.exists() or not looks_like_repo_id(checkpoint):
        _check_folder(path)
        return path
    snapshot = resolve_cached_model(checkpoint)
    # A snapshot can hold only what was fetched so far (AutoConfig alone fetches config.json): say so here,
    # with the download command, rather than "not a checkpoint" about a folder the learner never made.
    has_weights = any((snapshot / (single or index)).is_file() for _fmt, single, index in _WEIGHT_LAYOUTS)
    if not (snapshot / "config.json").is_file() or not has_weights:
        raise not_cached_error(Path(checkpoint).as_posix(), hub_cache_dir(), partly=True)
    return snapshot


def _locate(folder: str | Path) -> _Layout:
    path = checkpoint_folder(folder)
    for fmt, single, index in _WEIGHT_LAYOUTS:
        if single is not None and (path / single).is_file():
            return _Layout(path, fmt, None, {}, [single])
        if index is not None and (path / index).is_file():
            mapping = _read_index(path / index)
            files = sorted(set(mapping.values()))
            for name in files:
                if not (path / name).is_file():
                    raise CheckpointError(
                        f"The index {path / index} names {name}, but {path / name} is missing; re-download "
                        "the checkpoint or rebuild it.",
                        kind="missing_shard",
                    )
            return _Layout(path, fmt, index, mapping, files)
    raise CheckpointError(
        f"{path} is not a Hugging Face checkpoint: it has no weights file (expected config.json plus "
        f"{_EXPECTED_WEIGHTS}).",
        kind="not_a_checkpoint",
    )


def _read_index(index_path: Path) -> dict[str, str]:
    bad = CheckpointError(
        f"The index {index_path} is not valid JSON with a weight_map of tensor names to shard files; "
        "re-download the checkpoint or rebuild it.",
        kind="bad_index",
    )
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise bad from None
    mapping = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(mapping, dict) or not mapping:
        raise bad
    for name, file in mapping.items():
        # Shard names are plain files in the folder; anything else (../, absolute paths) is not a real index.
        if (
            not isinstance(name, str)
            or not isinstance(file, str)
            or Path(file).name != file
            or file in ("", "..")
        ):
            raise bad
    return dict(mapping)


def _corrupt(path: Path, reason: str) -> CheckpointError:
    return CheckpointError(
        f"{path} is damaged ({reason}); delete it and rebuild the checkpoint or download it again.",
        kind="corrupt_shard",
    )


def _read_safetensors_header(path: Path) -> dict[str, dict[str, Any]]:
    """Return the tensor entries of a safetensors header, checked against the file size (no data is read)."""
    try:
        file_bytes = path.stat().st_size
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise _corrupt(path, f"only {file_bytes} bytes, shorter than a safetensors header")
            (header_bytes,) = struct.unpack("<Q", prefix)
            if header_bytes > min(_MAX_HEADER_BYTES, file_bytes - 8):
                raise _corrupt(path, f"its header claims {header_bytes} bytes but the file has {file_bytes}")
            raw = f.read(header_bytes)
    except FileNotFoundError:
        raise CheckpointError(
            f"The shard {path} is missing; re-download the checkpoint or rebuild it.", kind="missing_shard"
        ) from None
    try:
        header = json.loads(raw)
    except ValueError:
        raise _corrupt(path, "its header is not valid JSON") from None
    if not isinstance(header, dict):
        raise _corrupt(path, "its header is not a JSON object")
    header.pop("__metadata__", None)
    data_end = 0
    for name, entry in header.items():
        try:
            start, end = entry["data_offsets"]
            shape = [int(n) for n in entry["shape"]]
            if not isinstance(entry["dtype"], str) or not 0 <= start <= end or min(shape, default=0) < 0:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise _corrupt(path, f"its header entry for {name} is malformed") from None
        data_end = max(data_end, end)
    expected_bytes = 8 + header_bytes + data_end
    if file_bytes < expected_bytes:
        raise _corrupt(
            path, f"it is {file_bytes} bytes but its header says {expected_bytes}; it was cut short"
        )
    if file_bytes > expected_bytes:
        raise _corrupt(path, f"it is {file_bytes} bytes but its header says {expected_bytes}")
    return header


def _load_bin(path: Path, *, mmap: bool) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(
            f"The shard {path} is missing; re-download the checkpoint or rebuild it.", kind="missing_shard"
        )
    import torch  # only now: a .bin file can only be read by torch

    # Files from torch < 1.6 are plain pickles, which torch cannot memory-map.
    mmap = mmap and zipfile.is_zipfile(path)
    try:
        with warnings.catch_warnings():
            # Old pickles trigger a "Detected pickle protocol" UserWarning that says nothing to a learner.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        # weights_only refused something that is not a tensor; nothing in the file was executed.
        blocked = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = (
            f"it asks to call {blocked.group(1)}" if blocked else "it holds objects other than plain tensors"
        )
        raise CheckpointError(
            f"Refused to load {path}: {what}, which could run code on this machine, so it was not unpickled; "
            "delete it and use a checkpoint from a source you trust (prefer .safetensors).",
            kind="unsafe_pickle",
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _corrupt(path, f"torch.load failed: {first_line.rstrip('.')}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise _corrupt(path, "it is not a dictionary of tensors")
    return state


def _load_safetensors(load_file: Callable[..., dict[str, torch.Tensor]], path: Path, *, mmap: bool) -> dict:
    if "backend" in inspect.signature(load_file).parameters:
        return load_file(path, device="cpu", backend="mmap" if mmap else "pread")
    return load_file(path, device="cpu")  # older safetensors: always a copy into RAM


def read_shard(path: str | Path, *, mmap: bool = False) -> dict[str, torch.Tensor]:
    """Load every tensor of one weights file onto the CPU, safely.

    ``mmap=False`` (the default) really reads the bytes into RAM, which is what "read a shard" means in the
    lessons; ``mmap=True`` memory-maps the file instead, so pages arrive (file-backed) only when a tensor is
    touched. safetensors files go through ``safetensors.torch.load_file`` (its ``backend="pread"`` for a real
    read: its default, ``"mmap"``, is lazy); ``.bin`` files through ``torch.load(weights_only=True)``, so a
    pickle that would run code is refused (``kind="unsafe_pickle"``) before any of it runs.

    >>> import tempfile
    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = make_checkpoint(tmp, size="5MB")
    ...     tensors = read_shard(shard_files(folder)[0])
    ...     print(tensors["model.norm.weight"][:3])
    tensor([1., 1., 1.])
    """
    path = Path(path)
    if path.suffix in (".bin", ".pt", ".pth"):
        return _load_bin(path, mmap=mmap)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(
            f"The shard {path} is missing; re-download the checkpoint or rebuild it.", kind="missing_shard"
        )
    _read_safetensors_header(path)  # a precise message for truncated files, before the library's own
    try:
        return _load_safetensors(load_file, path, mmap=mmap)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _corrupt(path, f"safetensors could not read it: {str(exc).strip().rstrip('.')}") from None


def shard_files(folder: str | Path) -> list[Path]:
    """Return the weights files of a checkpoint folder, in index order (or the single weights file).

    >>> import tempfile
    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print([p.name for p in shard_files(make_checkpoint(tmp, size="5MB", format="bin", shards=2))])
    ['pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin']
    """
    layout = _locate(folder)
    return [layout.folder / name for name in layout.files]


def weight_map(folder: str | Path) -> dict[str, str]:
    """Return tensor name -> weights file name for a checkpoint folder (one file: every name maps to it).

    >>> import tempfile
    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print(weight_map(make_checkpoint(tmp, size="5MB"))["lm_head.weight"])
    model.safetensors
    """
    layout = _locate(folder)
    if layout.index_file is not None:
        return dict(layout.weight_map)
    name = layout.files[0]
    return {tensor: name for tensor in _shard_tensors(layout.folder / name, layout.format)}


def tensor_bytes(folder: str | Path) -> dict[str, int]:
    """Every tensor's size in bytes, by name, from the shards' headers (``.bin`` shards are memory-mapped).

    >>> import tempfile
    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = make_checkpoint(tmp, size="6MB", shards=2)
    ...     sizes, info = tensor_bytes(folder), inspect_checkpoint(folder)
    >>> sum(sizes.values()) == info.total_bytes, max(sizes, key=sizes.get) == info.largest_tensor
    (True, True)
    """
    layout = _locate(folder)
    return {name: n_bytes for file in layout.files
            for name, (_, _, n_bytes) in _shard_tensors(layout.folder / file, layout.format).items()}


def _shard_tensors(path: Path, fmt: str) -> dict[str, tuple[str, int, int]]:
    """tensor name -> (dtype name, elements, bytes), without loading tensor data."""
    if fmt == "safetensors":
        result = {}
        for name, entry in _read_safetensors_header(path).items():
            start, end = entry["data_offsets"]
            dtype = dtype_from_safetensors(entry["dtype"])
            result[name] = (dtype, math.prod(entry["shape"]), end - start)
        return result
    state = _load_bin(path, mmap=True)  # memory-mapped: shapes and dtypes without reading the data
    result = {
        name: (str(t.dtype).removeprefix("torch."), t.numel(), t.numel() * t.element_size())
        for name, t in state.items()
    }
    del state
    return result


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(
            f"{folder} is not a Hugging Face checkpoint: it has no config.json (expected config.json plus "
            f"{_EXPECTED_WEIGHTS}).",
            kind="not_a_checkpoint",
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = None
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{path} is not valid JSON; re-download the checkpoint or rebuild it.", kind="bad_config"
        )
    return config


def inspect_checkpoint(folder: str | Path) -> CheckpointInfo:
    """Describe any Hugging Face causal-LM checkpoint folder without loading its weights.

    ``folder`` may also be a hub id of a model in the local Hugging Face cache (see :func:`checkpoint_folder`);
    ``info.folder`` is then its snapshot folder, which is what every load uses.

    Reads ``config.json``, the index if there is one, and each safetensors header (``.bin`` files are
    memory-mapped). Raises :class:`CheckpointError` naming the path when the folder is missing, not a
    checkpoint, has a broken index, a missing or damaged shard, or an index that disagrees with its shards.

    >>> import tempfile
    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     info = inspect_checkpoint(make_checkpoint(tmp, size="6MB", dtype="bfloat16", shards=3))
    >>> info.format, info.dtype, len(info.shards), info.index_file, info.architectures
    ('safetensors', 'bfloat16', 3, 'model.safetensors.index.json', ('LlamaForCausalLM',))
    >>> abs(info.total_bytes - 6_000_000) < 0.005 * 6_000_000
    True
    """
    path = checkpoint_folder(folder)
    config = _read_config(path)
    layout = _locate(path)

    shards: list[ShardInfo] = []
    dtypes: dict[str, int] = {}
    parameters = 0
    largest_tensor, largest_tensor_bytes = "", -1
    for name in layout.files:
        file_path = layout.folder / name
        contents = _shard_tensors(file_path, layout.format)
        if layout.index_file is not None:
            for tensor, file in layout.weight_map.items():
                if file == name and tensor not in contents:
                    raise CheckpointError(
                        f"The index {layout.folder / layout.index_file} lists tensor {tensor} in {name}, but "
                        f"{file_path} does not contain it; re-download the checkpoint or rebuild it.",
                        kind="index_mismatch",
                    )
        for tensor, (dtype, numel, n_bytes) in contents.items():
            dtypes[dtype] = dtypes.get(dtype, 0) + n_bytes
            parameters += numel
            if n_bytes > largest_tensor_bytes:
                largest_tensor, largest_tensor_bytes = tensor, n_bytes
        shards.append(
            ShardInfo(name, file_path.stat().st_size, sum(c[2] for c in contents.values()), len(contents))
        )

    dtypes = dict(sorted(dtypes.items(), key=lambda item: (-item[1], item[0])))
    text_config = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    tie = config.get("tie_word_embeddings", text_config.get("tie_word_embeddings", True))
    architectures = config.get("architectures") or ()
    return CheckpointInfo(
        folder=layout.folder.absolute(),
        format=layout.format,
        dtype=next(iter(dtypes), "unknown"),
        dtypes=dtypes,
        parameters=parameters,
        total_bytes=sum(dtypes.values()),
        shards=tuple(shards),
        index_file=layout.index_file,
        largest_shard=max(shards, key=lambda s: s.file_bytes),
        largest_tensor=largest_tensor,
        largest_tensor_bytes=max(largest_tensor_bytes, 0),
        model_type=config.get("model_type") if isinstance(config.get("model_type"), str) else None,
        architectures=tuple(str(a) for a in architectures) if isinstance(architectures, list) else (),
        # Hugging Face ties input and output embeddings unless the config says otherwise.
        tie_word_embeddings=bool(tie),
    )
