"""Bad input, faults and cleanup: one clear sentence for each mistake, nothing of the learner's lost, and the
parent (the learner's kernel) always goes on.

Every message test asserts that the message names the file or value involved and stays one line.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from widgetlib import STRATEGIES, make_checkpoint, run, start
from widgetlib.cli import main as cli_main
from widgetlib.core.errors import CheckpointError, OffloadLabError
from widgetlib.core.strategies import check_dtype_usable

REPO = Path(__file__).resolve().parents[1]


def _one_sentence(message: str) -> str:
    assert "\n" not in message and "Traceback" not in message, message
    return message


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    return make_checkpoint(size="40MB", shards=2)


def _copy(checkpoint: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(checkpoint, target)
    return target


# ------------------------------------------------------------------------------------------- messages


def _expect(kind: str, needle: str, call) -> OffloadLabError:
    with pytest.raises(OffloadLabError) as caught:
        call()
    assert caught.value.kind == kind, (caught.value.kind, caught.value.message)
    assert needle in _one_sentence(caught.value.message)
    return caught.value


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    _expect("missing_folder", str(missing), lambda: run(missing, "normal"))


def test_folder_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    _expect("not_a_checkpoint", str(tmp_path), lambda: run(tmp_path, "normal"))


def test_broken_index(checkpoint: Path, tmp_path: Path) -> None:
    folder = _copy(checkpoint, tmp_path)
    (folder / "model.safetensors.index.json").write_text("{not json")
    _expect("bad_index", "model.safetensors.index.json", lambda: run(folder, "manual_shards"))


def test_inconsistent_index(checkpoint: Path, tmp_path: Path) -> None:
    folder = _copy(checkpoint, tmp_path)
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["weight_map"]["model.layers.0.mlp.extra.weight"] = next(iter(index["weight_map"].values()))
    index_path.write_text(json.dumps(index))
    _expect("index_mismatch", "model.layers.0.mlp.extra.weight", lambda: run(folder, "manual_shards"))


def test_missing_shard(checkpoint: Path, tmp_path: Path) -> None:
    folder = _copy(checkpoint, tmp_path)
    (folder / "model-00002-of-00002.safetensors").unlink()
    _expect("missing_shard", "model-00002-of-00002.safetensors", lambda: run(folder, "normal"))


def test_truncated_shard(checkpoint: Path, tmp_path: Path) -> None:
    folder = _copy(checkpoint, tmp_path)
    shard = folder / "model-00001-of-00002.safetensors"
    with shard.open("r+b") as f:
        f.truncate(shard.stat().st_size // 2)
    _expect("corrupt_shard", "model-00001-of-00002.safetensors", lambda: run(folder, "low_cpu_mem_usage"))


def test_unknown_strategy(checkpoint: Path) -> None:
    _expect("unknown_strategy", "'fastest'", lambda: run(checkpoint, "fastest"))


@pytest.mark.parametrize("option", ["max_memory", "budget"])
def test_bad_size_strings(checkpoint: Path, option: str) -> None:
    _expect("bad_size", f"{option}='3 bananas'", lambda: run(checkpoint, "offload_folder", **{option: "3 bananas"}))


def test_budget_smaller_than_the_largest_tensor(checkpoint: Path) -> None:
    _expect("budget_too_small", "budget='2MB'", lambda: run(checkpoint, "offload_folder", budget="2MB"))


def test_offload_folder_that_is_a_file(checkpoint: Path, tmp_path: Path) -> None:
    not_a_folder = tmp_path / "offload.txt"
    not_a_folder.write_text("x")
    _expect(
        "offload_not_writable",
        str(not_a_folder),
        lambda: run(checkpoint, "offload_folder", offload_folder=not_a_folder),
    )


def test_offload_folder_that_cannot_be_written(checkpoint: Path) -> None:
    # /proc refuses new folders even to root, which CI runs as (chmod would not stop root).
    target = Path("/proc/offload-lab-cannot-write-here")
    if not Path("/proc").is_dir():
        pytest.skip("needs /proc (Linux) for a folder that even root cannot create")
    _expect("offload_not_writable", str(target), lambda: run(checkpoint, "offload_folder", offload_folder=target))


def test_architecture_transformers_cannot_build(checkpoint: Path, tmp_path: Path) -> None:
    folder = _copy(checkpoint, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "imaginary-lm"
    (folder / "config.json").write_text(json.dumps(config))
    _expect("unknown_architecture", "config.json", lambda: run(folder, "normal"))


def test_dtype_the_machine_cannot_use(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    def refuse(*args, **kwargs):
        raise RuntimeError('"addmm_impl_cpu_" not implemented for \'Half\'')

    monkeypatch.setattr(torch.Tensor, "__matmul__", refuse)
    _expect("dtype_unsupported", "dtype='float16'", lambda: check_dtype_usable("float16"))


def test_unknown_dtype(checkpoint: Path) -> None:
    _expect("bad_dtype", "dtype='int3'", lambda: run(checkpoint, "normal", dtype="int3"))


def test_cli_prints_one_line_and_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["load", str(tmp_path / "missing"), "--strategy", "normal"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(tmp_path / "missing") in err
    assert err.count("\n") == 1 and "Traceback" not in err


# ----------------------------------------------------------------------------------------- disk full


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 4 MB tmpfs: a real disk that fills up. Needs root (CI runs as root) and Linux."""
    mount_point = tmp_path / "tiny-disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}); CI runs as root and can")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_disk_full_while_building_a_checkpoint(tiny_disk: Path) -> None:
    _expect("disk_full", str(tiny_disk), lambda: make_checkpoint(tiny_disk / "ck", size="20MB"))
    assert list(tiny_disk.iterdir()) == []  # the partial folder is gone


def test_disk_full_while_offloading(checkpoint: Path, tiny_disk: Path) -> None:
    bin_checkpoint = make_checkpoint(size="40MB", shards=2, format="bin")
    report = run(bin_checkpoint, "offload_folder", offload_folder=tiny_disk, max_memory="5MB")
    assert report.outcome == "error"
    assert report.error_kind == "disk_full", report.error
    assert str(tiny_disk) in _one_sentence(report.error)
    # The parent goes on: the next run works.
    assert run(checkpoint, "manual_shards").outcome == "ok"


# ------------------------------------------------------------------------------------------ security


def test_hostile_pickle_is_refused_and_never_runs(checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "hostile"
    folder.mkdir()
    shutil.copy(checkpoint / "config.json", folder / "config.json")
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    import torch

    torch.save({"model.embed_tokens.weight": Payload()}, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError) as caught:
        run(folder, "normal")
    assert caught.value.kind == "unsafe_pickle"
    assert "pytorch_model.bin" in _one_sentence(caught.value.message)
    assert not marker.exists()


def test_make_lab_listens_on_loopback_with_a_token() -> None:
    makefile = (REPO / "Makefile").read_text()
    lab_recipe = makefile.split("\nlab:", 1)[1].split("\n\n", 1)[0]
    assert "--ServerApp.ip=127.0.0.1" in lab_recipe
    for forbidden in ("--no-token", "0.0.0.0", "token=''", 'token=""', "--ip=*"):
        assert forbidden not in lab_recipe


# ------------------------------------------------------------------------------- nothing lost, no litter


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_load_never_writes_to_the_checkpoint_and_leaves_no_temp(
    checkpoint: Path, fresh_tmpdir: Path, strategy: str
) -> None:
    before = _snapshot(checkpoint)
    report = run(checkpoint, strategy, offload_and_reload=(strategy == "manual_shards"))
    assert report.outcome == "ok", report.error
    assert _snapshot(checkpoint) == before
    assert os.listdir(fresh_tmpdir) == []


_FRESH_KERNEL = """
import json, os
from widgetlib.core.registry import strategy_names
from widgetlib.measure import processes
from widgetlib.measure.runner import run

checkpoint, tmp = os.environ["CHECKPOINT"], os.environ["TMPDIR"]
seen = {}
for strategy in strategy_names():
    report = run(checkpoint, strategy, forwards=1)
    assert report.outcome == "ok", (strategy, report.error)
    seen[strategy] = sorted(os.listdir(tmp))
processes.shutdown()
seen["after"] = sorted(os.listdir(tmp))
print(json.dumps(seen))
"""


def test_a_fresh_kernel_running_every_strategy_leaves_its_tmpdir_empty(tmp_path: Path) -> None:
    # A kernel of its own, so the zygote and the children start with this TMPDIR and torch's compile cache left to
    # its default, as for a learner (this test process has already set TORCHINDUCTOR_CACHE_DIR for itself). The
    # spawned path is checked in tests/test_limits.py, where a spawned run is paid for anyway.
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    checkpoint = make_checkpoint(size="5MB", shards=2)
    env = {k: v for k, v in os.environ.items() if k not in ("TORCHINDUCTOR_CACHE_DIR", "OFFLOAD_LAB_START")}
    env.update(TMPDIR=str(tmp), CHECKPOINT=str(checkpoint), PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", _FRESH_KERNEL], env=env, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    # While it lives, the zygote holds one folder of its own; nothing else is there, and it goes with the zygote.
    for strategy in STRATEGIES:
        assert len(seen[strategy]) == 1 and seen[strategy][0].startswith("offload-lab-process-"), seen
    assert seen["after"] == []


def test_error_in_the_child_leaves_no_temp(checkpoint: Path, tmp_path: Path, fresh_tmpdir: Path) -> None:
    # A config whose shapes disagree with the weights passes every check in the parent and fails in the child.
    folder = _copy(checkpoint, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["intermediate_size"] += 8
    (folder / "config.json").write_text(json.dumps(config))
    learner_folder = tmp_path / "mine"
    for strategy in ("offload_folder", "manual_shards"):
        report = run(folder, strategy, offload_folder=learner_folder if strategy == "offload_folder" else None)
        assert report.outcome == "error", (strategy, report.outcome)
        _one_sentence(report.error)
        assert os.listdir(fresh_tmpdir) == []
    assert learner_folder.is_dir()


def _start_and_wait_for_sample(checkpoint: Path, strategy: str, **options):
    first = threading.Event()
    handle = start(checkpoint, strategy, on_sample=lambda s: first.set(), **options)
    assert first.wait(30)
    return handle


@pytest.mark.parametrize(
    ("sig", "outcome"), [(signal.SIGKILL, "killed"), (signal.SIGSEGV, "crashed")], ids=["sigkill", "segfault"]
)
def test_child_killed_or_crashing_gives_a_report(checkpoint: Path, fresh_tmpdir: Path, sig, outcome) -> None:
    if sys.platform == "win32":
        pytest.skip("POSIX signals")
    handle = _start_and_wait_for_sample(checkpoint, "normal", forwards=1000)  # seconds: the signal lands mid-run
    os.kill(handle.pid, sig)
    report = handle.wait(30)
    assert report.outcome == outcome
    assert signal.Signals(sig).name in _one_sentence(report.error)
    assert os.listdir(fresh_tmpdir) == []
    assert run(checkpoint, "manual_shards").outcome == "ok"  # the next run works


def test_budget_stop_and_cancel_leave_no_temp(checkpoint: Path, fresh_tmpdir: Path, tmp_path: Path) -> None:
    stopped = run(checkpoint, "normal", budget="50MB")
    assert stopped.outcome == "stopped_by_budget"
    assert os.listdir(fresh_tmpdir) == []
    learner_folder = tmp_path / "keep"
    learner_folder.mkdir()
    (learner_folder / "mine.txt").write_text("mine")
    handle = _start_and_wait_for_sample(checkpoint, "offload_folder", offload_folder=learner_folder, forwards=1000)
    handle.cancel()  # during the run: 1000 forwards take seconds
    assert handle.wait(30).outcome == "cancelled"
    assert os.listdir(fresh_tmpdir) == []
    assert (learner_folder / "mine.txt").read_text() == "mine"
