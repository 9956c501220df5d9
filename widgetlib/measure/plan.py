"""Will it fit? Each strategy's predicted peak for a model on a machine's RAM, before any weights are read.

The model is a checkpoint folder (or a cached hub id), or a folder holding only its ``config.json``: a hub
model's config is a few kB (``hf download ID config.json --local-dir DIR``), so the question can be answered
before its weights are downloaded. With the weights, the sizes are read from their headers
(:func:`inspect_checkpoint`); with the config alone, from the empty model transformers builds from it (every
tensor's shape, on the meta device), in the config's dtype, in files of at most a given size. Either way the
peaks come from :func:`~widgetlib.core.estimates.estimate_peak`, the estimate every measured run is put beside,
and what ``offload_folder`` would put on disk from transformers' own planner (``_get_device_map``, which
``from_pretrained(device_map="auto")`` calls).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.checkpoints import SAVE_SHARD_BYTES
from ..core.errors import CheckpointError
from ..core.estimates import PeakEstimate, estimate_peak
from ..core.hf_folder import CheckpointInfo, ShardInfo, checkpoint_folder, inspect_checkpoint
from ..core.options import KEEP_DTYPE, bytes_per_number, torch_dtype
from ..core.registry import strategy_names
from ..core.sizes import format_bytes, parse_size

__all__ = ["HEADROOM", "SAVE_SHARD_BYTES", "FitPlan", "StrategyFit", "config_only_info", "plan"]

# The share of the RAM a plan leaves free: the estimates leave out the forward's activations and the allocator's
# slack (lesson 05 puts measured peaks beside them), and the machine's other programs need RAM too. A strategy
# whose baseline + peak lands in that last share is "tight", not "fits"; offload_folder's default max_memory
# stays out of it.
HEADROOM = 0.1


@dataclass(frozen=True)
class StrategyFit:
    """One strategy's prediction: its peak above the loading process's baseline, and whether baseline + peak
    stays within the RAM planned for."""

    strategy: str
    estimate: PeakEstimate
    verdict: str  # "fits", "tight" (within the last HEADROOM of the RAM) or "does not fit"
    disk_bytes: int = 0  # offload_folder: what its plan puts on disk


@dataclass(frozen=True)
class FitPlan:
    """:func:`plan`'s answer: the model's sizes, the RAM and baseline planned with, and each strategy's fit."""

    info: CheckpointInfo
    from_config_only: bool
    ram_bytes: int
    baseline_bytes: int
    max_memory_bytes: int
    shard_bytes: int
    rows: tuple[StrategyFit, ...]

    def to_markdown(self) -> str:
        """The plan as a Markdown table with one sentence above it (what was planned from, for which RAM).

        >>> from widgetlib.core.checkpoints import make_checkpoint
        >>> text = plan(make_checkpoint(size="5MB"), ram="1GB", baseline_bytes=10**8).to_markdown()
        >>> "| normal |" in text and "| fits |" in text
        True
        """
        source = ("its config.json alone (sizes of the empty model, in files of at most "
                  f"{format_bytes(self.shard_bytes)})" if self.from_config_only else "its weights' headers")
        lines = [
            f"{self.info.model_type or 'model'} at {self.info.folder}: {self.info.parameters / 1e9:.2f} B "
            f"parameters, {format_bytes(self.info.total_bytes)} in {self.info.dtype}, planned from {source}. "
            f"RAM {format_bytes(self.ram_bytes)}, of which the loading process's baseline takes "
            f"{format_bytes(self.baseline_bytes)}; offload_folder planned with max_memory "
            f"{format_bytes(self.max_memory_bytes)}.",
            "",
            f"| strategy | predicted peak above baseline | baseline + peak | on disk | fits? (tight: the last "
            f"{HEADROOM:.0%} of the RAM) | arithmetic |",
            "|---|---:|---:|---:|---|---|",
        ]
        for row in self.rows:
            total = self.baseline_bytes + row.estimate.peak_above_baseline_bytes
            lines.append(
                f"| {row.strategy} | {format_bytes(row.estimate.peak_above_baseline_bytes)} | {format_bytes(total)} "
                f"| {format_bytes(row.disk_bytes) if row.disk_bytes else '–'} | "
                f"{row.verdict} | {row.estimate.explanation} |"
            )
        return "\n".join(lines)


def _empty_model(folder: Path, dtype: str) -> Any:
    from accelerate import init_empty_weights

    from ..core.strategies import _load_config, _model_class

    config = _load_config(folder)
    with init_empty_weights():  # the same empty model build_empty_model makes, from the config alone
        model = _model_class(config)._from_config(config, dtype=torch_dtype(dtype)).eval()
    # Tied as from_pretrained ties them and as save_pretrained writes them: a tied embedding is one tensor.
    model.tie_weights()
    return model


def _config_dtype(folder: Path) -> str:
    import json

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    named = config.get("dtype") or config.get("torch_dtype") or text.get("dtype") or text.get("torch_dtype")
    return named if isinstance(named, str) and named in ("float32", "float16", "bfloat16") else "float32"


def config_only_info(folder: str | Path, *, shard_bytes: int = SAVE_SHARD_BYTES, model: Any = None) -> CheckpointInfo:
    """What :func:`inspect_checkpoint` would report for the checkpoint ``save_pretrained`` writes for the model of
    ``folder/config.json``, in the config's dtype (float32 when it names none), files of at most
    ``shard_bytes``: built from the empty model's tensors (``model``, else built here), tied weights counted once.

    >>> import tempfile, transformers
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     transformers.GPT2Config(n_layer=2, n_embd=64, n_head=2).save_pretrained(tmp)
    ...     info = config_only_info(tmp)
    >>> info.model_type, info.dtype, info.tie_word_embeddings, len(info.shards), info.parameters > 0
    ('gpt2', 'float32', True, 1, True)
    """
    path = Path(folder).expanduser().absolute()
    dtype = _config_dtype(path)
    model = model if model is not None else _empty_model(path, dtype)
    per_number = bytes_per_number(dtype)
    # state_dict keeps a tied weight under both names; save_pretrained writes it once (named_parameters does too).
    tensors = [(name, p.numel() * per_number) for name, p in model.named_parameters()]
    shards: list[ShardInfo] = []
    size = count = 0
    for _, n_bytes in tensors:
        if count and size + n_bytes > shard_bytes:
            shards.append(ShardInfo(f"model-{len(shards) + 1:05d}.safetensors", size, size, count))
            size = count = 0
        size, count = size + n_bytes, count + 1
    shards.append(ShardInfo(f"model-{len(shards) + 1:05d}.safetensors", size, size, count))
    largest, largest_bytes = max(tensors, key=lambda t: t[1])
    total = sum(n for _, n in tensors)
    return CheckpointInfo(
        folder=path, format="safetensors", dtype=dtype, dtypes={dtype: total},
        parameters=sum(p.numel() for p in model.parameters()), total_bytes=total, shards=tuple(shards),
        index_file="model.safetensors.index.json" if len(shards) > 1 else None,
        largest_shard=max(shards, key=lambda s: s.tensor_bytes), largest_tensor=largest,
        largest_tensor_bytes=largest_bytes, model_type=getattr(model.config, "model_type", None),
        architectures=tuple(getattr(model.config, "architectures", None) or (type(model).__name__,)),
        tie_word_embeddings=bool(getattr(model.config, "tie_word_embeddings", False)),
    )


def _disk_bytes(model: Any, max_memory_bytes: int) -> int:
    """What ``from_pretrained(device_map="auto", max_memory={"cpu": max_memory_bytes})`` would put on disk."""
    from transformers.integrations.accelerate import _get_device_map

    from ..core.strategies import device_map_summary

    model.hf_device_map = _get_device_map(model, "auto", {"cpu": max_memory_bytes}, None)
    if model.hf_device_map.get("") == "disk":  # no room for even the first module: all of it planned for disk
        return sum(p.numel() * p.element_size() for p in model.parameters())
    return device_map_summary(model).get("disk", {}).get("bytes", 0)


def _catalogue_folder(checkpoint: str | Path) -> Path | None:
    """For a catalogue name not on disk: a folder holding its config.json alone (written once, a few kB)."""
    from ..core.catalogue import find_entry, write_catalogue_config
    from ..core.checkpoints import cache_dir

    text = str(checkpoint)
    entry = find_entry(text)
    if entry is None:
        return None
    folder = cache_dir() / "catalogue" / entry["hub_id"].replace("/", "--")
    if not (folder / "config.json").is_file():
        write_catalogue_config(text, folder)
    return folder


def plan(checkpoint: str | Path, *, ram: str | int | None = None, dtype: str = KEEP_DTYPE,
         baseline_bytes: int | None = None, max_memory: str | int | None = None,
         max_shard_size: str | int = SAVE_SHARD_BYTES) -> FitPlan:
    """Predict, for each strategy, the peak RAM that loading ``checkpoint`` needs and whether it fits in ``ram``
    (default: this machine's total RAM), before any weight is read.

    ``checkpoint`` is a checkpoint folder, a cached hub id, a folder with only ``config.json``, or the name (or hub
    id) of a model in the catalogue of real shapes (:mod:`widgetlib.core.catalogue`, e.g. ``"llama-3.1-8b"``),
    planned at full size from its config, which is saved under :func:`~widgetlib.core.checkpoints.cache_dir`.
    ``baseline_bytes`` is the loading process's RAM before the load (Python, torch, transformers): default a
    measured run's (:func:`~widgetlib.measure.runner.run` of a tiny checkpoint, about a second with a warm
    process). ``max_memory`` for ``offload_folder`` defaults to the RAM left after the baseline, the
    :data:`HEADROOM` and the largest tensor (which the load holds once while offloading it). With the config
    alone, ``max_shard_size`` is the size of the files the weights would come in (the hub lists them; default
    transformers 5's).

    >>> from widgetlib.core.checkpoints import make_checkpoint
    >>> result = plan(make_checkpoint(size="5MB"), ram="8GB", baseline_bytes=500 * 10**6)
    >>> [row.strategy for row in result.rows] == list(strategy_names()), {row.verdict for row in result.rows}
    (True, {'fits'})
    """
    from ..core.strategies import build_empty_model

    try:  # the learner's own folder or cached download first; a catalogue name only where there is none
        folder = checkpoint_folder(checkpoint)
    except CheckpointError as exc:
        folder = _catalogue_folder(checkpoint) if exc.kind in ("missing_folder", "not_cached") else None
        if folder is None:
            raise
    shard_bytes = parse_size(max_shard_size, name="max_shard_size")
    try:
        info = inspect_checkpoint(folder)
        weights = True
    except CheckpointError as exc:  # the weights layouts inspect_checkpoint knows: none here, only config.json?
        if exc.kind != "not_a_checkpoint" or not (folder / "config.json").is_file():
            raise
        weights = False
    if weights:
        model = build_empty_model(folder, dtype=dtype)
    else:
        model = _empty_model(folder.absolute(), _config_dtype(folder) if dtype == KEEP_DTYPE else dtype)
        info = config_only_info(folder, shard_bytes=shard_bytes, model=model if dtype == KEEP_DTYPE else None)
    if ram is None:
        import psutil

        ram_bytes = int(psutil.virtual_memory().total)
    else:
        ram_bytes = parse_size(ram, name="ram")
    if baseline_bytes is None:
        from ..core.checkpoints import make_checkpoint
        from .runner import run

        tiny = run(make_checkpoint(size="5MB"), "low_cpu_mem_usage", forwards=1)
        baseline_bytes = int(tiny.baseline_rss_bytes or 0)
    usable = int((1 - HEADROOM) * ram_bytes)
    max_memory_bytes = (parse_size(max_memory, name="max_memory") if max_memory is not None
                        else max(usable - baseline_bytes - info.largest_tensor_bytes, info.largest_tensor_bytes))
    rows = []
    for name in strategy_names():
        estimate = estimate_peak(info, name, dtype=dtype,
                                 max_memory_bytes=max_memory_bytes if name == "offload_folder" else None)
        total = baseline_bytes + estimate.peak_above_baseline_bytes
        verdict = "fits" if total <= usable else "tight" if total <= ram_bytes else "does not fit"
        disk = _disk_bytes(model, max_memory_bytes) if name == "offload_folder" else 0
        rows.append(StrategyFit(name, estimate, verdict, disk))
    return FitPlan(info, not weights, ram_bytes, baseline_bytes, max_memory_bytes, shard_bytes, tuple(rows))
