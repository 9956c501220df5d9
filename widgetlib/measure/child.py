"""The child side of a measured run: ``python -m widgetlib.measure.child`` loads one checkpoint and reports.

The parent (``widgetlib.measure.runner``) writes one JSON job to this process's stdin and reads JSON lines
back from its stdout; everything else the libraries print goes to stderr, so a stray ``print`` can never break
the protocol. Messages, in order: ``hello`` (imports done, waiting for the job), ``ready`` (warm-up done,
baseline taken), any number of ``event`` / ``gpu``, then exactly one ``result`` or ``error``. The runner keeps
one such child spare, imported and waiting, so the next run starts in a second instead of several.

Running in its own process is the point: the learner's kernel holds none of this memory, and a crash, an
out-of-memory kill or a budget stop ends this process, never the kernel.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import IO, Any

from .memory import kernel_peak_bytes, now_s, read_memory, reset_kernel_peak


class _Channel:
    """JSON lines to the parent, one writer lock: events come from the loader and the GPU thread."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, message_type: str, **fields: Any) -> None:
        line = json.dumps({"type": message_type, "t_s": now_s(), **fields})
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


def _quiet_libraries() -> None:
    # Progress bars and advice go to stderr anyway; silencing them keeps the saved stderr tail readable.
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0]}
    for package in ("torch", "transformers", "accelerate", "safetensors"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def _warm_up(checkpoint: str, dtype_name: str) -> None:
    """Pay the one-off costs before the baseline, so the figures are the load's and not the libraries'.

    transformers imports each architecture's modeling code lazily, and torch pages in its kernels on first
    use: done during the load, both would add a few hundred MB and seconds to whichever strategy ran first.
    """
    import torch
    import torch.nn.functional as F

    from ..core.strategies import build_empty_model

    build_empty_model(checkpoint, dtype=dtype_name)
    x = torch.randn(1, 2, 8, 64)
    F.scaled_dot_product_attention(x, x, x)
    F.silu(x @ x.transpose(-1, -2)).softmax(-1)


def _is_disk_full(exc: BaseException) -> bool:
    """ENOSPC, also when a library wrapped it (safetensors raises SafetensorError "... os error 28")."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == 28:
            return True
        if "No space left on device" in str(seen) or "os error 28" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _gpu_reporter(channel: _Channel, stop: threading.Event) -> None:
    import torch

    while not stop.wait(0.05):
        channel.send("gpu", bytes=int(torch.cuda.memory_allocated()))


def _take_job(channel: _Channel) -> dict[str, Any] | None:
    """Wait for the job; then send this process's output and temporary files to the run's own folder.

    A spare child waits here, already imported, until a run needs it (or the parent goes and stdin closes).
    Its temporary folder is set now, not at spawn, so it is the folder of the run that uses it.
    """
    channel.send("hello", pid=os.getpid())
    line = sys.stdin.readline()
    if not line:
        return None
    job = json.loads(line)
    stderr_fd = os.open(job["stderr_path"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(stderr_fd, 2)
    os.dup2(stderr_fd, 1)
    for name in ("TMPDIR", "TEMP", "TMP"):
        os.environ[name] = job["tmp_dir"]
    tempfile.tempdir = job["tmp_dir"]
    return job


def main() -> int:
    # The protocol keeps the real stdout; fd 1 is pointed at stderr for everyone else.
    channel = _Channel(os.fdopen(os.dup(1), "w", encoding="utf-8"))
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    from ..core.errors import OffloadLabError

    import_error: BaseException | None = None
    try:  # the imports come before the job, so a spare child is ready the moment a run needs it
        import torch

        from ..core.strategies import LoadOptions, device_map_summary, forward_checksum, load_model

        _quiet_libraries()
    except Exception as exc:  # reported once there is a job to report it for
        import_error = exc
    job = _take_job(channel)
    if job is None:
        return 0

    try:
        if import_error is not None:
            raise import_error

        if job.get("threads"):
            torch.set_num_threads(int(job["threads"]))
        options = LoadOptions(
            dtype=job["dtype"],
            max_memory_bytes=job.get("max_memory_bytes"),
            offload_folder=Path(job["offload_folder"]) if job.get("offload_folder") else None,
            offload_via=job.get("offload_via", "from_pretrained"),
            low_cpu_mem_usage=bool(job.get("low_cpu_mem_usage", True)),
            offload_and_reload=bool(job.get("offload_and_reload", False)),
            scratch_folder=Path(job["scratch_folder"]) if job.get("scratch_folder") else None,
            gpu_max_memory_bytes=job.get("gpu_max_memory_bytes"),
        )
        use_gpu = bool(options.gpu_max_memory_bytes) and torch.cuda.is_available()
        _warm_up(job["checkpoint"], job["dtype"])
        # The baseline is taken after every import and the warm-up: what the load adds is what is measured.
        peak_reset = reset_kernel_peak()
        channel.send(
            "ready",
            rss_bytes=read_memory().rss_bytes,
            versions=_versions(),
            cuda=use_gpu,
            peak_reset=peak_reset,
        )

        stop_gpu = threading.Event()
        if use_gpu:
            threading.Thread(target=_gpu_reporter, args=(channel, stop_gpu), daemon=True).start()

        def emit(label: str, kind: str) -> None:
            channel.send("event", label=label, kind=kind)

        start = time.perf_counter()
        result = load_model(job["checkpoint"], job["strategy"], options, emit)
        load_s = time.perf_counter() - start
        emit(f"loaded in {load_s:.2f} s", "loaded")
        device_map = device_map_summary(result.model)
        emit("forward pass started", "forward")
        logits_sha256, forward_s = forward_checksum(result.model)
        emit(f"forward pass done in {forward_s:.3f} s", "forward_done")
        stop_gpu.set()
        channel.send(
            "result",
            load_s=load_s,
            forward_s=forward_s,
            logits_sha256=logits_sha256,
            device_map=device_map,
            details=result.details,
            kernel_peak_bytes=kernel_peak_bytes(),
            gpu_peak_bytes=int(torch.cuda.max_memory_allocated()) if use_gpu else None,
        )
        return 0
    except OffloadLabError as exc:
        channel.send("error", message=exc.message, kind=exc.kind)
        return 1
    except MemoryError:
        channel.send(
            "error",
            message="The load ran out of memory inside its process; try a strategy with a lower peak, a "
            "smaller checkpoint, or a larger budget.",
            kind="out_of_memory",
            kernel_peak_bytes=kernel_peak_bytes(),
        )
        return 1
    except Exception as exc:  # a bug or a library failure: the parent shows one sentence, keeps the details
        if _is_disk_full(exc):
            where = getattr(exc, "filename", None) or job.get("offload_folder") or "the offload folder"
            channel.send(
                "error",
                message=f"The disk filled up while writing {where}; free some space or point offload_folder "
                "at a disk with room.",
                kind="disk_full",
            )
            return 1
        first_line = (str(exc).strip().splitlines() or [""])[0]
        channel.send(
            "error",
            message=f"The load failed with {type(exc).__name__}: {first_line}",
            kind="crash",
            traceback=traceback.format_exc(),
        )
        return 1


if __name__ == "__main__":
    code = main()
    # Skip interpreter teardown: it takes seconds with torch loaded and nothing it does is worth measuring.
    sys.stderr.flush()
    os._exit(code)
