"""Errors a learner can hit, each worded as one sentence: what was wrong, which file or value, what to do.

Every layer raises :class:`OffloadLabError` (or a subclass) for a mistake a learner can fix; the CLI prints its
message and exits non-zero, the widgets show it in place of a traceback. Anything else is a bug in Offload Lab.

Each error, and each run that did not finish (``Report.error_kind``), carries a ``kind`` from
:data:`ERROR_KINDS`: the one list of them, which the README's "When something goes wrong" table is
(``tests/test_docs.py`` checks both that table and that the code raises no other kind).
"""

from __future__ import annotations

__all__ = ["ERROR_KINDS", "ERROR_KIND_ROWS", "CheckpointError", "OffloadLabError", "OptionError", "RunnerBusyError",
           "error_kinds_markdown"]

# Every kind, grouped as the README shows them: (kinds, when a learner sees them).
ERROR_KIND_ROWS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("missing_folder",), "the checkpoint folder does not exist"),
    (("not_cached",), "a model id (`gpt2`) is neither a folder here nor (fully) in the local Hugging Face cache; "
                      "the message gives `hf download NAME`"),
    (("not_a_checkpoint",), "the folder has no `config.json` or no weights files (the message lists what was "
                            "expected)"),
    (("bad_config",), "the folder's `config.json` is not valid JSON"),
    (("bad_index", "index_mismatch"), "the `*.index.json` file cannot be read, or names tensors a shard does not "
                                      "hold"),
    (("missing_shard", "corrupt_shard"), "a shard named by the index is missing, truncated or damaged"),
    (("unsafe_pickle",), "a `.bin` file asks to run code when unpickled; `weights_only=True` refused it and none of "
                         "it ran"),
    (("unknown_architecture",), "transformers cannot build a causal LM from this `config.json`"),
    (("unknown_strategy", "bad_size", "bad_dtype", "bad_format", "bad_option"),
     "a strategy name, a size such as `max_memory='3 bananas'`, a dtype, a checkpoint format or an option that is "
     "not allowed"),
    (("bad_shards", "bad_seed"), "`make_checkpoint`'s `shards`, `max_shard_size` or `seed` cannot be used (a `.bin` "
                                 "shard must also fit in the RAM available while it is written)"),
    (("unknown_model", "bad_layers"), "`make_twin` / `make-checkpoint --like` was given a name that is not in the "
                                      "catalogue of real shapes, or a `layers` count that is not a positive number"),
    (("bad_interval", "bad_count"), "a sampler's `interval_s` or `uss_interval_s` is not a positive number of "
                                    "seconds, or its `max_samples` is below 2"),
    (("budget_too_small",), "the RAM budget is smaller than the largest tensor, which must fit at least once"),
    (("folder_not_empty", "not_writable"), "`make_checkpoint`'s folder is a file, holds something else, or cannot "
                                           "be written"),
    (("cache_in_repository",), "`OFFLOAD_LAB_CACHE` points inside the Offload Lab repository, where gigabytes of "
                               "weights could end up in a commit"),
    (("not_a_call",), "what was given to `explain_call` / `offload-lab explain` is not one model's "
                      "`from_pretrained(...)` call (or not Python)"),
    (("not_measurable",), "a value in the call names something the measured process cannot see (a variable, a "
                          "call): write the value out"),
    (("offload_not_writable",), "the offload folder is a file, or cannot be created or written"),
    (("disk_full",), "the disk filled up while building a checkpoint or writing the offload folder"),
    (("dtype_unsupported",), "this machine's CPU cannot compute in that dtype"),
    (("busy",), "another run is in progress in this kernel: runs are queued or refused, never interleaved"),
    (("protocol",), "the loading process was sent a job by other Offload Lab code (another version); restart the "
                    "kernel"),
    (("load_failed",), "outcome `error`: the load raised an exception in its own process (the message gives its "
                       "first line, the Report's `details[\"traceback\"]` the rest)"),
    (("out_of_memory",), "outcome `error`: torch could not allocate memory inside the loading process"),
    (("budget",), "outcome `stopped_by_budget`: the load did not fit the budget: the kernel OOM-killed it in its "
                  "cgroup, or the watchdog stopped it (when, at what RSS)"),
    (("cancelled",), "outcome `cancelled`: Stop was pressed (or `RunHandle.cancel()` called) before the run "
                     "finished"),
    (("killed",), "outcome `killed`: the OS killed the loading process, usually out of memory; your kernel is fine"),
    (("crashed",), "outcome `crashed`: the loading process crashed or exited before reporting (or the runner "
                   "itself failed); your kernel is fine"),
)

ERROR_KINDS = frozenset(kind for kinds, _ in ERROR_KIND_ROWS for kind in kinds)
"""Every ``kind`` an :class:`OffloadLabError` or a Report's ``error_kind`` can carry."""


def error_kinds_markdown() -> str:
    """:data:`ERROR_KIND_ROWS` as the README's Markdown table.

    >>> print(error_kinds_markdown().splitlines()[2])
    | `missing_folder` | the checkpoint folder does not exist |
    """
    rows = ["| kind | when |", "|---|---|"]
    rows += [f"| {', '.join(f'`{k}`' for k in kinds)} | {when} |" for kinds, when in ERROR_KIND_ROWS]
    return "\n".join(rows)


class OffloadLabError(Exception):
    """A problem the learner can fix, described in one sentence.

    ``kind`` is one of :data:`ERROR_KINDS` (``"missing_folder"``, ``"bad_size"``, ...), a short machine-readable
    name that tests and the widgets use; ``message`` is what a person reads.

    >>> err = OffloadLabError("The folder /tmp/nope does not exist; check the path.", kind="missing_folder")
    >>> str(err), err.kind
    ('The folder /tmp/nope does not exist; check the path.', 'missing_folder')
    >>> import pickle  # crosses a process boundary whole, kind included
    >>> pickle.loads(pickle.dumps(err)).kind
    'missing_folder'
    """

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind

    def __reduce__(self) -> tuple[object, ...]:
        # Exception's own pickling passes only the message; kind is keyword-only and required.
        return _rebuild, (type(self), self.message, self.kind)


def _rebuild(cls: type[OffloadLabError], message: str, kind: str) -> OffloadLabError:
    return cls(message, kind=kind)


class CheckpointError(OffloadLabError):
    """A checkpoint folder is missing, incomplete, corrupt or unsafe.

    >>> raise CheckpointError("x.safetensors is missing", kind="missing_shard")
    Traceback (most recent call last):
    ...
    widgetlib.core.errors.CheckpointError: x.safetensors is missing
    """


class OptionError(OffloadLabError, ValueError):
    """An option value (a size, a strategy name, a dtype, a budget) that cannot be used.

    >>> try:  # a ValueError too, so code that guards against bad values catches it
    ...     raise OptionError("size='lots' is not a size; write it like 300MB.", kind="bad_size")
    ... except ValueError as exc:
    ...     exc.kind
    'bad_size'
    """


class RunnerBusyError(OffloadLabError):
    """Another measured run is in progress in this kernel; runs are never interleaved into one plot.

    >>> RunnerBusyError("busy").kind
    'busy'
    """

    def __init__(self, message: str, *, kind: str = "busy") -> None:
        super().__init__(message, kind=kind)
