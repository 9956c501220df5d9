"""The small probes the lessons run in this kernel or in a child process: a mapped file, the page cache, a
memory spike, the allocator, a mapped checkpoint copied out as ``load_state_dict`` copies, the live drawing of
this kernel's own memory, a block of address space reserved and not touched, a measured run drawn live, a
``.bin`` that runs code when unpickled, and what an offload folder is for (deleted too early, missing, without
accelerate).

>>> sorted(page_cache_probe(__file__)) == ["bytes", "cold_s", "evicted", "warm_s"]
True
"""

from __future__ import annotations

import contextlib
import mmap
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.options import RUN_DEFAULTS
from ..core.sizes import parse_size
from ..measure.memory import Event, MemorySample, Sampler, kernel_peak_bytes, now_s, read_memory, reset_kernel_peak

if TYPE_CHECKING:
    from ..measure.report import Report
    from ..widgets import MemoryPlot

_PAGE = mmap.PAGESIZE

# ------------------------------------------------------------------------------------------- probes (lesson 00)


def mmap_probe(path: str | os.PathLike[str], mark: Callable[[str], None] | None = None) -> dict[str, MemorySample]:
    """Memory-map ``path`` in this process, read every page, copy it, and read this process's memory at each
    step: ``start``, ``mapped``, ``touched``, ``copied``, ``copy_deleted``, ``unmapped``. ``mark(name)`` is
    called at each step too (e.g. the ``mark`` of :func:`watch_this_kernel`, to put the steps on a plot).

    Mapping costs nothing; reading pages makes them resident as *file-backed* memory (the page cache, shared
    and droppable); copying them makes *anonymous* memory (private, only freed by the program).
    """
    stages: dict[str, MemorySample] = {}

    def step(name: str) -> None:
        if mark is not None:
            mark(name)
        stages[name] = read_memory()

    step("start")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        step("mapped")
        view = memoryview(mm)
        total = 0
        for offset in range(0, len(mm), _PAGE):
            total += view[offset]  # one byte per page faults the whole page in
        step("touched")
        copy = bytearray(view)
        step("copied")
        del copy
        step("copy_deleted")
        view.release()
    step("unmapped")
    return stages


def page_cache_probe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``path`` twice, after asking the kernel to drop it from the page cache, and time both reads.

    Returns ``cold_s``, ``warm_s``, ``bytes`` and ``evicted`` (False where the OS has no ``posix_fadvise``: then
    both reads may come from the cache). Dropping clean cached pages needs no privileges. The reads go into one
    reused buffer, so what is timed is the reading, not the allocating.
    """
    buffer = memoryview(bytearray(1 << 22))
    timings = []
    n_bytes = 0
    with open(path, "rb", buffering=0) as f:
        evicted = hasattr(os, "posix_fadvise")
        if evicted:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        for _ in range(2):
            f.seek(0)
            n_bytes = 0
            start = time.perf_counter()
            while n := f.readinto(buffer):
                n_bytes += n
            timings.append(time.perf_counter() - start)
    return {"cold_s": timings[0], "warm_s": timings[1], "bytes": n_bytes, "evicted": evicted}


def spike_probe(n_bytes: int, interval_s: float = 0.1) -> dict[str, Any]:
    """Make a short memory spike of ``n_bytes`` in this process while a sampler watches at ``interval_s``.

    The spike is a fresh anonymous mapping, written page by page and unmapped at once (memory the allocator
    already holds could otherwise be reused, and no spike would show). Returns ``before`` (RSS),
    ``sampled_peak`` (what the sampler saw), ``kernel_peak`` (VmHWM), ``reset`` (whether the kernel's mark could
    be reset first, so that it measures this spike only) and ``samples``.
    """
    chunk = b"\x01" * (1 << 20)
    reset = reset_kernel_peak()
    before = read_memory().rss_bytes
    with Sampler(interval_s=interval_s) as sampler:
        time.sleep(2 * interval_s)
        with mmap.mmap(-1, n_bytes) as spike:
            for offset in range(0, n_bytes, len(chunk)):
                spike[offset : offset + len(chunk)] = chunk[: n_bytes - offset]
        time.sleep(2 * interval_s)
    return {
        "before": before,
        "sampled_peak": sampler.sampled_peak_bytes,
        "kernel_peak": kernel_peak_bytes(),
        "reset": reset,
        "samples": sampler.sample_count,
    }


_ALLOCATOR_CHILD = textwrap.dedent(
    """
    import ctypes, ctypes.util, gc, sys

    n_bytes = int(sys.argv[1])

    def stage(name):
        print(name, flush=True)
        if not sys.stdin.readline():
            sys.exit(0)

    stage("start")
    big = b"x" * n_bytes                          # one big block: glibc maps it on its own
    stage("big_allocated")
    del big
    stage("big_deleted")
    size = 1000                                   # a variable: a literal would be folded into one constant
    junk = [b"y" * size for _ in range(n_bytes // size)]   # many small blocks on the heap
    survivors = junk[::64]                        # a few stay alive, scattered among the rest
    stage("small_allocated")
    del junk
    stage("small_deleted")
    gc.collect()
    stage("gc_collected")
    big = b"z" * (n_bytes // 2)                   # a contiguous block after the heap is full of holes
    stage("big_after_holes")
    del big
    trim = None
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        pass
    if trim is not None:
        trim(0)
        stage("malloc_trimmed")
    stage("end")
    """
)


def allocator_probe(n_bytes: int = 200_000_000) -> dict[str, MemorySample]:
    """Run an allocation story in a child process and read its memory from outside at each step.

    Stages: ``start``; ``big_allocated`` / ``big_deleted`` (one block of ``n_bytes``); ``small_allocated`` /
    ``small_deleted`` / ``gc_collected`` (``n_bytes`` in small blocks, one in 64 kept alive); ``big_after_holes``
    (a contiguous half-size block while the heap is full of holes); ``malloc_trimmed`` (glibc only: the
    allocator asked to hand free pages back).
    """
    stages: dict[str, MemorySample] = {}
    process = subprocess.Popen(
        [sys.executable, "-c", _ALLOCATOR_CHILD, str(int(n_bytes))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        for line in process.stdout:
            name = line.strip()
            stages[name] = read_memory(process.pid)
            if name == "end":
                break
            process.stdin.write("\n")
            process.stdin.flush()
    finally:
        process.stdin.close()
        process.wait(timeout=30)
    stages.pop("end", None)
    return stages


def reserve_probe(n_bytes: int) -> dict[str, Any]:
    """Ask the OS for one contiguous private block of ``n_bytes`` of address space in this process, touch none of
    it, and give it back: ``granted`` (True or False), ``error`` (the refusal's ``type: message``, else None) and
    ``rss_growth`` (what RSS grew by while the block was held: untouched pages take no RAM).

    On Linux the block is an anonymous ``MAP_PRIVATE`` mapping, which the overcommit policy judges when it is made
    (``vm.overcommit_memory``: 0 compares the request with total RAM plus swap, 2 with the commit limit, 1 never
    refuses); on Windows it is a section backed by the paging file, charged against the commit limit at once.

    >>> reserve_probe(1 << 20)["granted"]
    True
    """
    before = read_memory().rss_bytes
    try:
        if os.name == "nt":
            block = mmap.mmap(-1, int(n_bytes))
        else:  # fileno -1: Python adds MAP_ANONYMOUS; MAP_PRIVATE is what malloc's large blocks are
            block = mmap.mmap(-1, int(n_bytes), flags=mmap.MAP_PRIVATE)
    except (OSError, OverflowError, ValueError) as exc:
        return {"granted": False, "error": f"{type(exc).__name__}: {exc}", "rss_growth": 0}
    try:
        grown = read_memory().rss_bytes - before
    finally:
        block.close()
    return {"granted": True, "error": None, "rss_growth": grown}


_MAPPED_COPY_CHILD = textwrap.dedent(
    """
    import sys

    import torch
    from safetensors.torch import load_file

    def stage(name):
        print(name, flush=True)
        sys.stdin.readline()

    mapped = load_file(sys.argv[1])  # the default backend: the file is mapped, nothing read yet
    copy_1 = {name: torch.zeros(t.shape, dtype=t.dtype) for name, t in mapped.items()}  # a model's own memory
    stage("before_copy")
    with torch.no_grad():
        for name, t in mapped.items():
            copy_1[name].copy_(t)  # what load_state_dict does for each parameter
    stage("copied")
    del mapped, t
    stage("unmapped")
    stage("end")
    """
)


def mapped_copy_probe(path: str | os.PathLike[str]) -> dict[str, MemorySample]:
    """Copy 2 read as ``safetensors.torch.load_file`` reads it, in a child process (this kernel imports no
    torch), its memory read from outside at each step: ``before_copy`` (``path`` mapped by ``load_file``, and
    tensors of the same shapes allocated and zeroed: copy 1), ``copied`` (every tensor copied out of the mapping
    into copy 1, as ``load_state_dict`` copies), ``unmapped`` (the mapped tensors deleted).
    """
    stages: dict[str, MemorySample] = {}
    process = subprocess.Popen([sys.executable, "-c", _MAPPED_COPY_CHILD, str(path)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdin is not None and process.stdout is not None
    try:
        for line in process.stdout:
            name = line.strip()
            if name == "end":
                break
            stages[name] = read_memory(process.pid)
            process.stdin.write("\n")
            process.stdin.flush()
    finally:
        process.stdin.close()
        process.wait(timeout=60)
    if process.returncode:
        raise RuntimeError(f"the mapped-copy probe exited with {process.returncode} after {sorted(stages)}")
    return stages


@contextlib.contextmanager
def watch_this_kernel(
    plot: MemoryPlot, label: str = "this kernel", interval_s: float = RUN_DEFAULTS.interval_s
) -> Iterator[Callable[[str], None]]:
    """Draw this kernel's own memory on ``plot`` while the ``with`` block runs; yields ``mark(label)`` that puts
    an event marker on the curve.

    A Report is not needed: the samples go straight to the plot, on a time axis that starts at the ``with``.
    """
    t0 = now_s()
    run_id = plot.begin_run(label)

    def shifted(sample: MemorySample) -> None:
        plot.add_sample(replace(sample, t_s=sample.t_s - t0), run_id)

    def mark(text: str) -> None:
        time.sleep(3 * interval_s)  # let the curve catch up, so the marker sits on the new level
        plot.add_event(Event(now_s() - t0, text, "phase"), run_id)

    with Sampler(interval_s=interval_s, on_sample=shifted):
        yield mark
        time.sleep(3 * interval_s)
    plot.flush()


def run_live(plot: MemoryPlot, checkpoint: str | os.PathLike[str], strategy: str, *, note: str | None = None,
             **options: Any) -> Report:
    """One measured run (``widgetlib.run`` options: ``low_cpu_mem_usage=False``, ``offload_via="accelerate"``,
    ``offload_and_reload=True``, ...) drawn live on ``plot``, next to the runs already there; returns the Report.

    For the options a :class:`~widgetlib.widgets.StrategyPanel` has no control for.
    """
    from ..core.checkpoints import inspect_checkpoint
    from ..measure.runner import start

    info = inspect_checkpoint(checkpoint)
    budget = options.get("budget")
    run_id = plot.begin_run(strategy, checkpoint_bytes=info.total_bytes,
                            budget_bytes=parse_size(budget, name="budget") if budget is not None else None,
                            note=note)
    try:
        handle = start(checkpoint, strategy, on_sample=lambda s: plot.add_sample(s, run_id),
                       on_event=lambda e: plot.add_event(e, run_id), **options)
    except BaseException:
        plot.discard_run(run_id)
        raise
    report = handle.wait()
    plot.end_run(report, run_id)
    return report


def fill_weights(model: Any, folder: str | os.PathLike[str]) -> Any:
    """Assign every shard of ``folder`` to an empty ``model``, one shard at a time (``assign=True``: the loaded
    tensors become the parameters, nothing is copied). Returns the model."""
    from ..core.checkpoints import read_shard, shard_files

    for path in shard_files(folder):
        model.load_state_dict(read_shard(path), strict=False, assign=True)
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
    return model.eval()


class _Payload:
    """Pickles to 'call pathlib.Path.touch on a marker file': harmless, and visible if it ever runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def hostile_pickle(folder: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``folder/pytorch_model.bin``: a real tensor plus a pickled instruction to create a marker file.

    Returns ``(bin_path, marker_path)``. If anything unpickles it without ``weights_only``, the marker appears:
    proof that loading a ``.bin`` runs whatever code its author put in it.

    >>> import tempfile, torch
    >>> path, marker = hostile_pickle(tempfile.mkdtemp())
    >>> _ = torch.load(path, weights_only=False)  # the unsafe way
    >>> marker.exists()
    True
    """
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "payload-ran.txt"
    marker.unlink(missing_ok=True)
    path = folder / "pytorch_model.bin"
    torch.save({"model.norm.weight": torch.ones(4), "extra": _Payload(marker)}, path)
    return path, marker


# ------------------------------------------------------------------------------------ offload folder (lesson 06)

# One child, five loads of the same tiny LLaMA with the second half of its layers sent to disk. Each outcome is
# what the installed libraries did: None where the call went through, else the exception's type and first line.
_OFFLOAD_FOLDER_CHILD = textwrap.dedent(
    """
    import gc, json, shutil, sys
    from pathlib import Path

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    bin_folder, safetensors_folder, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])

    def error(exc):
        return {"type": type(exc).__name__, "first_line": (str(exc).strip().splitlines() or [""])[0]}

    def attempt(call):
        try:
            call()
        except Exception as exc:
            return error(exc)
        return None

    def half_on_disk(folder):
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
        layers = len(model.model.layers)
        placement = {f"model.{name}": "cpu" for name, _ in model.model.named_children() if name != "layers"}
        placement.update({f"model.layers.{i}": "disk" if i >= layers // 2 else "cpu" for i in range(layers)})
        placement.update({name: "cpu" for name, _ in model.named_children() if name != "model"})
        return placement

    def forward(model):
        with torch.no_grad():
            model(torch.tensor([[1, 2, 3]]))

    device_map = half_on_disk(bin_folder)
    out = {"disk_modules": sorted(k for k, v in device_map.items() if v == "disk")}
    for fmt, folder in (("bin", bin_folder), ("safetensors", safetensors_folder)):
        offload = work / f"offload-{fmt}"
        model = AutoModelForCausalLM.from_pretrained(folder, device_map=device_map, offload_folder=str(offload))
        made = offload.exists()
        files = sorted(offload.iterdir()) if made else []
        size = sum(f.stat().st_size for f in files)
        forward(model)
        shutil.rmtree(offload, ignore_errors=True)  # the model is still alive
        out[fmt] = {"folder_made": made, "files": len(files), "bytes": size,
                    "first_file": files[0].name if files else None,
                    "forward_after_delete": attempt(lambda: forward(model))}
        del model
        gc.collect()
    out["bin_without_folder"] = attempt(lambda: AutoModelForCausalLM.from_pretrained(bin_folder,
                                                                                     device_map=device_map))
    everything = work / "offload-all"
    out["all_on_disk"] = attempt(lambda: forward(AutoModelForCausalLM.from_pretrained(
        bin_folder, device_map={"": "disk"}, offload_folder=str(everything))))
    shutil.rmtree(everything, ignore_errors=True)
    print(json.dumps(out))
    """
)

_WITHOUT_ACCELERATE_CHILD = textwrap.dedent(
    """
    import json, sys

    sys.modules["accelerate"] = None  # importlib.util.find_spec then answers None: as if it were not installed
    from transformers import AutoModelForCausalLM

    try:
        AutoModelForCausalLM.from_pretrained(sys.argv[1], device_map="cpu")
        out = None
    except Exception as exc:
        out = {"type": type(exc).__name__, "first_line": (str(exc).strip().splitlines() or [""])[0]}
    print(json.dumps(out))
    """
)


def _child_json(script: str, *args: str) -> Any:
    import json

    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300)
    if done.returncode:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"the probe's child exited with {done.returncode}: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def offload_folder_probe(workdir: str | os.PathLike[str], size: str = "4MB") -> dict[str, Any]:
    """Load one tiny LLaMA (``size``, two shards) as ``.bin`` and as safetensors, in a child process, with the
    second half of its layers on ``"disk"`` and an ``offload_folder`` under ``workdir``, then delete the folder
    while the model is alive and run a forward pass again. The result is what the installed libraries did:

    - ``disk_modules``: the modules the device map sent to disk;
    - ``bin`` / ``safetensors``: ``folder_made``, ``files`` and ``bytes`` written to the offload folder, its
      ``first_file``, and ``forward_after_delete`` (None when the forward pass after the delete went through,
      else ``{"type", "first_line"}`` of its exception);
    - ``bin_without_folder``: the ``.bin`` load with the same device map and no ``offload_folder``;
    - ``all_on_disk``: a ``.bin`` load with ``device_map={"": "disk"}`` and a folder, then a forward pass.

    The checkpoint is the probe's own, so what it shows does not depend on the lesson's size.
    """
    from ..core.checkpoints import make_checkpoint

    workdir = Path(workdir)
    bin_folder = make_checkpoint(workdir / "checkpoint-bin", size=size, shards=2, format="bin")
    safetensors_folder = make_checkpoint(workdir / "checkpoint-safetensors", size=size, shards=2)
    return _child_json(_OFFLOAD_FOLDER_CHILD, str(bin_folder), str(safetensors_folder), str(workdir))


def without_accelerate_probe(folder: str | os.PathLike[str]) -> dict[str, str] | None:
    """In a child process where ``import accelerate`` finds nothing (as if it were not installed), call
    ``from_pretrained(folder, device_map="cpu")``: returns None if it loaded, else the exception's ``type`` and
    ``first_line``. Only the device map needs accelerate: the child never imports it.
    """
    return _child_json(_WITHOUT_ACCELERATE_CHILD, str(folder))
