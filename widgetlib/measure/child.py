"""The child side of a measured run: load one checkpoint, run its forwards, report as JSON lines.

Two ways in, one body (:func:`serve`):

- **forked** (the default on Linux and macOS): the zygote (``widgetlib.measure.zygote``), which imported torch
  and transformers once, forks this process per run and calls :func:`serve_forked`; the child connects back
  to the runner over a Unix socket. Start-up is a fork, not an import: tens of milliseconds.
- **spawned** (Windows, ``OFFLOAD_LAB_START=spawn``, a GPU run):
  ``python -m widgetlib.measure.child`` imports everything itself and talks over stdin/stdout.

Messages (kinds in :mod:`widgetlib.measure.protocol`), in order: ``hello`` (pid, waiting for the job: the
runner moves it into its memory cgroup now, before it loads), ``ready`` (warm-up done, baseline taken, page
faults counted from here), any number of ``event`` / ``gpu``, then exactly one ``result`` or ``error``.
Everything else the libraries print goes to the run's stderr file, so a stray ``print`` cannot break the
protocol. Running in its own process is the point: the learner's kernel holds none of this memory, and a
crash, an out-of-memory kill or a budget stop ends this process, never the kernel.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .limits import cold_cache
from .memory import (
    kernel_peak_bytes,
    non_reclaimable_bytes,
    now_s,
    peak_source,
    portable_probe,
    read_memory,
    reset_kernel_peak,
)
from .protocol import (
    MSG_ERROR,
    MSG_EVENT,
    MSG_GPU,
    MSG_HELLO,
    MSG_READY,
    MSG_RESULT,
    PROTOCOL_VERSION,
    TORCH_CACHE_ENV,
    decode_job,
    remove_process_dir,
)


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


def import_libraries() -> None:
    """Import what every load needs and quiet it (the zygote calls this once; a spawned child per run)."""
    import torch  # noqa: F401
    import transformers

    from ..core import strategies
    from ..core.from_pretrained_source import forget_parsed_sources

    # Read (and cached) here, before any baseline, so a low_cpu_mem_usage load does not parse from_pretrained's
    # source inside its measured window: forked children inherit the zygote's cache. The syntax trees it was
    # read from go (only the small verdict stays): a forked child would copy their pages during its load.
    strategies.low_cpu_mem_usage_truth()
    forget_parsed_sources()
    gc.collect()
    # Progress bars and advice go to stderr anyway; silencing them keeps the saved stderr tail readable.
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


def warm_up(checkpoint: str | None, dtype_name: str) -> None:
    """Pay the one-off costs before the baseline, so the figures are the load's and not the libraries'.

    transformers imports each architecture's modeling code lazily, and torch pages in its kernels on first
    use: done during the load, both would add a few hundred MB and seconds to whichever strategy ran first.
    The zygote runs it once without a checkpoint (a tiny LLaMA, built for real and run forward), so forked
    children inherit most of that. Every child still builds its own checkpoint's empty model before its
    baseline: skipping it (tried) moved ~17 MB of first-build heap growth into every load, 0.4x of a 40 MB
    checkpoint, which is the library's one-off cost and not the strategy's.
    """
    import torch
    import torch.nn.functional as F

    from ..core.strategies import build_empty_model

    if checkpoint is None:
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(
            hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
            num_key_value_heads=2, vocab_size=128, max_position_embeddings=64,
        )
        with torch.no_grad():
            LlamaForCausalLM(config).eval()(torch.arange(4).unsqueeze(0))
    else:
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
        channel.send(MSG_GPU, bytes=int(torch.cuda.memory_allocated()))


def major_faults() -> int | None:
    """This process's major page faults so far (pages read from disk), or None where the OS does not say.

    >>> import sys
    >>> (major_faults() is None) == (sys.platform == "win32")  # only Windows has no getrusage to ask
    True
    """
    try:
        import resource  # not on Windows
    except ImportError:
        return None
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_majflt)


def disk_read_bytes() -> int | None:
    """Bytes this process has caused to be read from storage so far (``read_bytes`` in ``/proc/self/io``:
    reads and page faults that went to the disk, not those the page cache answered), or None off Linux and
    under the portable probe (which shows what macOS and Windows would).

    macOS has no such per-process counter, and Windows' (``ReadTransferCount``) counts every read, cache hits
    included, so it would not measure the same thing.

    >>> import sys
    >>> (disk_read_bytes() is None) == (not sys.platform.startswith("linux") or portable_probe())
    True
    """
    if portable_probe():
        return None
    try:
        with open("/proc/self/io", encoding="ascii") as io:
            for line in io:
                if line.startswith("read_bytes:"):
                    return int(line.split()[1])
    except OSError:  # not Linux, or a kernel without task I/O accounting
        return None
    return None


def _grown(start: int | None, end: int | None) -> int | None:
    """How much a counter grew between two readings, or None where the platform gave none.

    >>> _grown(3, 10), _grown(None, 10)
    (7, None)
    """
    return None if start is None or end is None else end - start


def _redirect_output(job: dict[str, Any]) -> None:
    """Send this process's stdout/stderr and temporary files (torch's compile cache too) to the run's own
    folder, which the runner removes after the run."""
    stderr_fd = os.open(job["stderr_path"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(stderr_fd, 2)
    os.dup2(stderr_fd, 1)
    os.close(stderr_fd)
    sys.stdout = sys.stderr
    for name in ("TMPDIR", "TEMP", "TMP"):
        os.environ[name] = job["tmp_dir"]
    tempfile.tempdir = job["tmp_dir"]
    os.environ[TORCH_CACHE_ENV] = os.path.join(job["tmp_dir"], "torchinductor")


def serve(
    channel: _Channel,
    read_line: Callable[[], str],
    import_error: BaseException | None = None,
) -> int:
    """Say hello, take one job, load, run the forwards, report; return the exit status (0 ok, 1 error)."""
    from ..core.errors import OffloadLabError

    now = read_memory()
    channel.send(
        MSG_HELLO,
        pid=os.getpid(),
        protocol=PROTOCOL_VERSION,
        rss_bytes=now.rss_bytes,
    )
    line = read_line()
    if not line:
        return 0
    job = json.loads(line)
    _redirect_output(job)
    try:
        if import_error is not None:
            raise import_error
        import torch

        from ..core.loading import load_model
        from ..core.strategies import device_map_summary, forward_checksum, forward_logits

        strategy, options, extra = decode_job(job)
        # The probe follows the runner's setting now, not the one the zygote was started with.
        if extra.get("probe") == "portable":
            os.environ["OFFLOAD_LAB_PROBE"] = "portable"
        else:
            os.environ.pop("OFFLOAD_LAB_PROBE", None)
        checkpoint = job["checkpoint"]
        forwards = int(extra.get("forwards", 1))
        # A forked child inherits the zygote's single warm-up thread; the zygote leaves torch's own default here.
        default_threads = int(os.environ.get("OFFLOAD_LAB_TORCH_THREADS", "0")) or torch.get_num_threads()
        torch.set_num_threads(int(extra.get("threads") or default_threads))
        use_gpu = bool(options.gpu_max_memory_bytes) and torch.cuda.is_available()
        warm_up(checkpoint, options.dtype)
        # The baseline is taken after every import and the warm-up: what the load adds is what is measured.
        peak_reset = reset_kernel_peak()
        faults_start, read_start = major_faults(), disk_read_bytes()
        at_ready = read_memory()
        channel.send(
            MSG_READY,
            rss_bytes=at_ready.rss_bytes,
            non_reclaimable_bytes=non_reclaimable_bytes(at_ready),
            versions=_versions(),
            cuda=use_gpu,
            peak_reset=peak_reset,
        )

        if extra.get("go_after_ready"):
            # With a budget the runner sets the room from this baseline before the load may begin.
            if read_line().strip() != "go":
                return 0
        stop_gpu = threading.Event()
        if use_gpu:
            threading.Thread(target=_gpu_reporter, args=(channel, stop_gpu), daemon=True).start()

        def emit(label: str, kind: str) -> None:
            # The child's own reading at this step, exact whatever the sampler's timing: a step that lasts less
            # than the sampling interval (a forward of a small model) still has its memory on the timeline.
            reading = read_memory()
            channel.send(MSG_EVENT, label=label, kind=kind, memory={
                "rss_bytes": reading.rss_bytes, "rss_anon_bytes": reading.rss_anon_bytes,
                "rss_file_bytes": reading.rss_file_bytes,
                # ru_maxrss, all the portable probe has for itself, is no peak of the load in a forked child
                "hwm_bytes": None if portable_probe() else reading.hwm_bytes,
                "rss_shmem_bytes": reading.rss_shmem_bytes,
            })

        start = time.perf_counter()
        result = load_model(checkpoint, strategy, options, emit)
        load_s = time.perf_counter() - start
        read_loaded = disk_read_bytes()
        emit(f"loaded in {load_s:.2f} s", "loaded")
        details = dict(result.details)
        if extra.get("cold_forward_paths"):
            details["cold_forward"] = cold_cache([Path(p) for p in extra["cold_forward_paths"]])
        device_map = device_map_summary(result.model)
        emit("forward 1 started", "forward")
        logits_sha256, logits_sample, forward_s = forward_logits(result.model, options.forward_tokens)
        emit(f"forward 1 done in {forward_s:.3f} s", "forward_done")
        # The first forward pays whatever the load left lazy (pages still on disk, offloaded layers); the
        # median of the next ones is the steady price of where the weights live.
        steady: list[float] = []
        for i in range(2, forwards + 1):
            sha, seconds = forward_checksum(result.model, options.forward_tokens)
            steady.append(seconds)
            if sha != logits_sha256:  # determinism is what makes the checksum comparable across strategies
                raise RuntimeError(f"forward {i} gave different logits from forward 1")
        if steady:
            emit(f"{len(steady)} more forwards, median {statistics.median(steady):.3f} s", "forward_done")
        faults_end, read_end = major_faults(), disk_read_bytes()
        stop_gpu.set()
        channel.send(
            MSG_RESULT,
            load_s=load_s,
            forward_s=forward_s,
            steady_forward_s=statistics.median(steady) if steady else None,
            forward_times_s=[forward_s, *steady],
            logits_sha256=logits_sha256,
            logits_sample=logits_sample,
            device_map=device_map,
            details=details,
            kernel_peak_bytes=kernel_peak_bytes(),
            peak_source=peak_source(),
            major_faults=_grown(faults_start, faults_end),
            disk_read_bytes=_grown(read_start, read_end),
            disk_read_forward_bytes=_grown(read_loaded, read_end),
            gpu_peak_bytes=int(torch.cuda.max_memory_allocated()) if use_gpu else None,
        )
        return 0
    except OffloadLabError as exc:
        channel.send(MSG_ERROR, message=exc.message, kind=exc.kind)
        return 1
    except MemoryError:
        channel.send(
            MSG_ERROR,
            message="The load ran out of memory inside its process (torch: \"DefaultCPUAllocator: can't allocate "
            "memory\"); try a strategy with a lower peak, a smaller checkpoint, or a larger budget.",
            kind="out_of_memory",
            kernel_peak_bytes=kernel_peak_bytes(),
        )
        return 1
    except Exception as exc:  # a bug or a library failure: the parent shows one sentence, keeps the details
        if _is_disk_full(exc):
            where = getattr(exc, "filename", None) or job.get("options", {}).get("offload_folder")
            where = where or "the offload folder"
            channel.send(
                MSG_ERROR,
                message=f"The disk filled up while writing {where}; free some space or point offload_folder "
                "at a disk with room.",
                kind="disk_full",
            )
            return 1
        first_line = (str(exc).strip().splitlines() or [""])[0]
        channel.send(
            MSG_ERROR,
            message=f"The load failed with {type(exc).__name__}: {first_line}",
            kind="load_failed",
            traceback=traceback.format_exc(),
        )
        return 1


def serve_forked(socket_path: str) -> int:
    """The forked child's entry (called by the zygote right after ``fork``): connect back, then :func:`serve`."""
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(socket_path)
    writer = sock.makefile("w", encoding="utf-8")
    reader = sock.makefile("r", encoding="utf-8")
    return serve(_Channel(writer), reader.readline)


def main() -> int:
    """The spawned child's entry: imports here, then :func:`serve` over stdin/stdout."""
    # The protocol keeps the real stdout; fd 1 is pointed at stderr for everyone else.
    channel = _Channel(os.fdopen(os.dup(1), "w", encoding="utf-8"))
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import_error: BaseException | None = None
    try:  # the imports come before the job, so a spare child is ready the moment a run needs it
        import_libraries()
    except Exception as exc:  # reported once there is a job to report it for
        import_error = exc
    return serve(channel, sys.stdin.readline, import_error)


if __name__ == "__main__":
    try:
        code = main()
    finally:
        remove_process_dir()
    # Skip interpreter teardown: it takes seconds with torch loaded and nothing it does is worth measuring.
    sys.stderr.flush()
    os._exit(code)
