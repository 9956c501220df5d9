"""Write a checkpoint's weights to disk, deterministic and piece by piece: the safetensors and ``.bin`` writers
that :func:`widgetlib.core.checkpoints.make_checkpoint` uses, with the random stream they share.

Apart from the folder logic (names, shards, index, cache) because these are the only parts that touch tensor
bytes: the same settings always give the same bytes, and RAM holds one piece (safetensors) or one shard (``.bin``),
never the whole checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .options import DTYPES, torch_dtype

if TYPE_CHECKING:  # imported where bytes are made: TensorSpec and Progress serve torch-free callers too
    import torch

__all__ = ["Progress", "ProgressCallback", "TensorSpec", "write_bin", "write_safetensors"]

ProgressCallback = Callable[[int, int, str], None]

# Tensors are generated and written in pieces of this many elements, so RAM holds at most one piece
# (safetensors) or one shard (.bin), never the whole checkpoint. Fixed: the pieces decide the random stream.
_CHUNK_ELEMENTS = 4 * 1024 * 1024
_INIT_STD = 0.02



@dataclass(frozen=True)
class TensorSpec:
    """A tensor to generate: its name and shape (no data).

    >>> TensorSpec("w", (3, 4)).numel
    12
    """

    name: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        """Elements in the tensor.

        >>> TensorSpec("b", (5,)).numel
        5
        """
        return math.prod(self.shape)


def _tensor_seed(seed: int, name: str) -> int:
    # A stable hash (not Python's salted hash()) so every run, machine and process gets the same stream.
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _generate(
    tensor: TensorSpec, seed: int, piece_at: Callable[[int, int], torch.Tensor]
) -> Iterator[torch.Tensor]:
    """Fill the tensor's values, flattened, piece by piece into ``piece_at(start, count)``; yield each piece.

    The pieces have a fixed size, so the random stream (and so the bytes) depend only on the name and seed,
    not on whether the caller reuses one small buffer (safetensors) or fills a whole tensor (``.bin``).
    """
    import torch

    generator = torch.Generator().manual_seed(_tensor_seed(seed, tensor.name))
    vector = len(tensor.shape) == 1  # RMSNorm weights start at one, as in a freshly initialised LLaMA
    for start in range(0, tensor.numel, _CHUNK_ELEMENTS):
        piece = piece_at(start, min(_CHUNK_ELEMENTS, tensor.numel - start))
        if vector:
            piece.fill_(1.0)
        else:
            piece.normal_(0.0, _INIT_STD, generator=generator)
        yield piece


class Progress:
    """Fans byte counts out to the learner's callback or a tqdm bar.

    >>> seen = []
    >>> bar = Progress(lambda done, total, label: seen.append((done, total, label)), 10)
    >>> bar.advance(4, "a.safetensors"); bar.close(); seen
    [(4, 10, 'a.safetensors')]
    """

    def __init__(self, progress: bool | ProgressCallback, total_bytes: int) -> None:
        self.total_bytes = total_bytes
        self.done_bytes = 0
        self._callback: ProgressCallback | None = None
        self._bar: Any = None
        if callable(progress):
            self._callback = progress
        elif progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total_bytes,
                unit="B",
                unit_scale=True,
                file=sys.stderr,
                desc="Building checkpoint",
                leave=True,
            )

    def advance(self, n_bytes: int, label: str) -> None:
        self.done_bytes += n_bytes
        if self._callback is not None:
            self._callback(self.done_bytes, self.total_bytes, label)
        if self._bar is not None:
            self._bar.set_postfix_str(label, refresh=False)
            self._bar.update(n_bytes)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def write_safetensors(
    path: Path, tensors: list[TensorSpec], dtype: str, seed: int, progress: Progress
) -> None:
    """Stream a safetensors file piece by piece (the library's writer needs every tensor in RAM at once).

    >>> import tempfile; from safetensors.torch import load_file
    >>> path = Path(tempfile.mkdtemp()) / "w.safetensors"
    >>> write_safetensors(path, [TensorSpec("w", (2, 3))], "float32", 0, Progress(False, 24))
    >>> load_file(path)["w"].shape
    torch.Size([2, 3])
    """
    entry = DTYPES[dtype]
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for tensor in tensors:
        n_bytes = tensor.numel * entry.bytes_per_number
        header[tensor.name] = {
            "dtype": entry.safetensors,
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + n_bytes],
        }
        offset += n_bytes
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    # Pad to 8 bytes with spaces, as the safetensors library does, so the data that follows stays aligned.
    header_bytes += b" " * (-len(header_bytes) % 8)
    import torch

    buffer = torch.empty(min(_CHUNK_ELEMENTS, max(t.numel for t in tensors)), dtype=torch_dtype(dtype))
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for tensor in tensors:
            for piece in _generate(tensor, seed, lambda _start, count: buffer[:count]):
                # A uint8 view of the same memory: numpy has no bfloat16, and this copies nothing.
                f.write(piece.view(torch.uint8).numpy().data)
                progress.advance(piece.numel() * entry.bytes_per_number, path.name)


def write_bin(path: Path, tensors: list[TensorSpec], dtype: str, seed: int, progress: Progress) -> None:
    """Write one pickle shard; torch.save needs the shard's tensors in RAM, so only this shard is held.

    Same pieces, same random stream as :func:`write_safetensors`: both formats hold identical weights.

    >>> import tempfile, torch
    >>> path = Path(tempfile.mkdtemp()) / "w.bin"
    >>> write_bin(path, [TensorSpec("w", (2, 3))], "float32", 0, Progress(False, 24))
    >>> torch.load(path, weights_only=True)["w"].shape
    torch.Size([2, 3])
    """
    import torch

    n_bytes = DTYPES[dtype].bytes_per_number
    state: dict[str, torch.Tensor] = {}
    for tensor in tensors:
        flat = torch.empty(tensor.numel, dtype=torch_dtype(dtype))
        # Same pieces, same random stream as the safetensors writer: both formats hold identical weights.
        for piece in _generate(tensor, seed, lambda start, count, flat=flat: flat[start : start + count]):
            progress.advance(piece.numel() * n_bytes, path.name)
        state[tensor.name] = flat.view(tensor.shape)
    torch.save(state, path)
