"""The ``offload-lab`` command (also ``python -m widgetlib``).

Subcommands::

    offload-lab make-checkpoint [DIR] --size 1GB | --params 100M [--shards 6 | --max-shard-size 200MB]
                                [--format safetensors|bin] [--dtype float32|bfloat16|float16]
                                [--seed 0] [--demo]
    offload-lab make-checkpoint DIR --like NAME [--layers N] [--dtype bfloat16] [--max-shard-size 5GB]
    offload-lab inspect DIR [--json]
    offload-lab plan DIR_OR_NAME [--ram 16GB] [--dtype ...] [--max-memory 8GB] [--max-shard-size 5GB]
    offload-lab load DIR --strategy NAME [--max-memory 300MB] [--offload-folder PATH] [--offload-via ...]
                     [--budget 8GB] [--dtype keep|float32|bfloat16|float16] [--cold-cache] [--cold-forward]
                     [--forwards 3] [--forward-tokens 16] [--threads N] [--json]
    offload-lab compare DIR [--max-memory 300MB] [--budget 8GB] [--dtype ...] [--cold-cache] [--cold-forward]
                        [--forwards 3] [--json] [--html report.html]
    offload-lab explain 'from_pretrained(...)' [--checkpoint DIR] [--measure] [--forwards 1] [--json]
    offload-lab --version

A learner's mistake (an :class:`~widgetlib.core.errors.OffloadLabError`) is printed as one ``error: ...`` line
on stderr with exit status 2, never as a traceback. Each subcommand is one ``_add_<name>`` function that
registers its parser and its handler (whose docstring is the command's help text); a new subcommand is one more
such function listed in ``_SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .core.errors import OffloadLabError, OptionError
from .core.options import (
    CHECKPOINT_DEFAULTS,
    FORMATS,
    KEEP_DTYPE,
    LOAD_DTYPES,
    OFFLOAD_VIA,
    RUN_DEFAULTS,
    STRATEGY_OPTIONS,
)
from .core.registry import get_strategy, strategy_names
from .core.sizes import format_bytes

__all__ = ["build_parser", "main"]

# argparse's type for what add_subparsers() returns is private; this is what the _add_* functions receive.
Subparsers = Any


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr like every other Offload Lab error (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see '{self.prog} --help').\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``offload-lab`` command with ``argv`` (default: ``sys.argv[1:]``) and return its exit status.

    0 on success, 2 for a learner's mistake (printed as one ``error: ...`` line on stderr), 130 on Ctrl-C.

    >>> main(["inspect", "/no/such/offload-lab-folder"])
    2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return exc.code if isinstance(exc.code, int) else 2
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return handler(args)
    except OffloadLabError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand registered.

    >>> sorted(build_parser()._subparsers._group_actions[0].choices)
    ['compare', 'explain', 'inspect', 'load', 'make-checkpoint', 'plan']
    """
    parser = _Parser(
        prog="offload-lab",
        description="Offload Lab: build Hugging Face checkpoints offline, inspect them, watch loading RAM.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"offload-lab {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add_subcommand in _SUBCOMMANDS:
        add_subcommand(subparsers)
    return parser


def _subcommand(
    subparsers: Subparsers, name: str, handler: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    """Register subcommand ``name`` with the ``handler`` that :func:`main` calls with the parsed arguments.

    The handler's docstring is the command's text, written once: its first line the one-line help in
    ``offload-lab --help``, the rest the description in ``offload-lab NAME --help``, where ``{strategies}`` is
    the registry's strategies as the parser is built (so a registered strategy is named too).
    """
    summary, _, rest = inspect.cleandoc(handler.__doc__ or name).partition("\n")  # no docstrings under -OO
    description = rest.strip().format(strategies=", ".join(strategy_names())) or None
    sub = subparsers.add_parser(name, help=summary, description=description)
    sub.set_defaults(handler=handler)
    return sub


def _choices(values: Sequence[str]) -> str:
    """An argument's choices as argparse shows them.

    >>> _choices(("safetensors", "bin"))
    '{safetensors,bin}'
    """
    return "{" + ",".join(values) + "}"


def _add_checkpoint_argument(sub: argparse.ArgumentParser) -> None:
    # What every command that reads a checkpoint accepts: a folder, or a model already in the local HF cache.
    sub.add_argument("folder", metavar="DIR", help="checkpoint folder, or id of a model in the local HF cache (gpt2)")


# ------------------------------------------------------------------------------------------------------------
# make-checkpoint


def _add_make_checkpoint(subparsers: Subparsers) -> None:
    sub = _subcommand(subparsers, "make-checkpoint", _run_make_checkpoint)
    sub.add_argument("folder", nargs="?", metavar="DIR", help="folder to create (default: the cache)")
    defaults = CHECKPOINT_DEFAULTS
    target = sub.add_mutually_exclusive_group()
    target.add_argument("--size", help=f"total tensor bytes, like 250MB, 1GB or 13GB (default {defaults.size})")
    target.add_argument("--params", help="parameter count instead of --size, like 100M or 7B")
    split = sub.add_mutually_exclusive_group()
    split.add_argument("--shards", type=int, help="split into exactly this many files (default: one file)")
    split.add_argument("--max-shard-size", help="split like Hugging Face: at most this much per file (200MB)")
    sub.add_argument("--format", metavar=_choices(FORMATS), help=f"weights format (default {defaults.format})")
    sub.add_argument("--dtype", metavar=_choices(LOAD_DTYPES), help=f"tensor dtype (default {defaults.dtype})")
    sub.add_argument("--seed", type=int, help=f"random seed; same settings, identical files (default {defaults.seed})")
    sub.add_argument(
        "--demo",
        action="store_true",
        help="build or reuse the lessons' demo checkpoint ($OFFLOAD_LAB_SIZE or 1GB, 6 shards, cached)",
    )
    sub.add_argument("--like", metavar="NAME", help="build a twin of a real model: its tensor names, shapes, dtype "
                     "and tied weights, random weights; a catalogue name (" + ", ".join(_catalogue_names()) + ") "
                     "or a folder or cached hub id with the model's config.json")
    sub.add_argument("--layers", type=int, help="with --like: keep only this many decoder layers (hidden size, "
                     "vocabulary and experts stay the real model's)")


def _catalogue_names() -> list[str]:
    from .core.catalogue import CATALOGUE

    return list(CATALOGUE)


def _run_make_checkpoint(args: argparse.Namespace) -> int:
    """build (or reuse) a LLaMA-style checkpoint with random weights, offline

    Build a real LLaMA-style Hugging Face checkpoint folder (config.json, generation_config.json, weights) with
    deterministic random weights. Without DIR it goes to the cache and is reused next time. The folder path is
    printed on stdout (so scripts can capture it); the progress bar and a one-line summary go to stderr.
    """
    from .core.checkpoints import demo_checkpoint, inspect_checkpoint, make_checkpoint

    # Only what was given on the command line, so the library's (and the demo's) defaults apply otherwise.
    options = {
        name: value
        for name, value in {
            "size": args.size,
            "params": args.params,
            "shards": args.shards,
            "max_shard_size": args.max_shard_size,
            "format": args.format,
            "dtype": args.dtype,
            "seed": args.seed,
        }.items()
        if value is not None
    }
    started = time.perf_counter()
    if args.like is not None:
        given = (("--size", args.size), ("--params", args.params), ("--shards", args.shards),
                 ("--format", args.format), ("--demo", args.demo or None))
        clashing = [flag for flag, value in given if value is not None]
        if clashing:
            raise OptionError(
                f"--like {args.like} takes its sizes from the real model, so {', '.join(clashing)} cannot be given "
                "with it; use --layers N to make the twin smaller.",
                kind="bad_option",
            )
        from .core.checkpoints import make_twin

        folder = make_twin(args.folder, args.like, layers=args.layers, dtype=args.dtype,
                           max_shard_size=args.max_shard_size, **({"seed": args.seed} if args.seed is not None else {}),
                           progress=True)
    elif args.layers is not None:
        raise OptionError(f"--layers {args.layers} scales a twin; give it with --like NAME.", kind="bad_option")
    elif args.demo:
        if args.folder is not None:
            raise OptionError(
                f"--demo builds into the cache, so it takes no folder ({args.folder!r}); drop one of them.",
                kind="bad_option",
            )
        folder = demo_checkpoint(**options, progress=True)
    else:
        folder = make_checkpoint(args.folder, **options, progress=True)
    print(folder)
    print(
        f"{_summary(inspect_checkpoint(folder))}; ready in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


def _summary(info: Any) -> str:
    architecture = info.architectures[0] if info.architectures else (info.model_type or "model")
    files = f"{len(info.shards)} {info.format} file" + ("s" if len(info.shards) > 1 else "")
    return (
        f"{architecture}: {_format_count(info.parameters)} parameters, {info.dtype}, "
        f"{format_bytes(info.total_bytes)} in {files} (largest {format_bytes(info.largest_shard.file_bytes)})"
    )


def _format_count(count: int) -> str:
    for unit, scale in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if count >= scale:
            return f"{count / scale:.1f}{unit}"
    return str(count)


# ------------------------------------------------------------------------------------------------------------
# inspect


def _add_inspect(subparsers: Subparsers) -> None:
    sub = _subcommand(subparsers, "inspect", _run_inspect)
    _add_checkpoint_argument(sub)
    sub.add_argument("--json", action="store_true", help="print one JSON document instead of a table")


def _run_inspect(args: argparse.Namespace) -> int:
    """describe any Hugging Face checkpoint folder without loading it

    Describe a Hugging Face causal-LM checkpoint folder (format, dtype, parameters, shards, largest tensor) from its
    config and safetensors headers, without loading the weights.
    """
    from .core.hf_folder import inspect_checkpoint  # headers only: no torch to import

    info = inspect_checkpoint(args.folder)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
    else:
        print(_table(info))
    return 0


def _table(info: Any) -> str:
    architectures = ", ".join(info.architectures) or "unknown architecture"
    dtypes = ", ".join(
        f"{dtype} ({n_bytes / info.total_bytes:.0%})" if len(info.dtypes) > 1 else dtype
        for dtype, n_bytes in info.dtypes.items()
    )
    layout = f"{len(info.shards)} shard" + ("s" if len(info.shards) > 1 else "")
    if info.index_file:
        layout += f" + {info.index_file}"
    rows = [
        ("model", f"{info.model_type or '?'} ({architectures}), tied embeddings: {info.tie_word_embeddings}"),
        ("format", f"{info.format}, {layout}"),
        ("dtype", dtypes or "none"),
        ("parameters", f"{_format_count(info.parameters)} ({info.parameters:,})"),
        ("total size", f"{format_bytes(info.total_bytes)} ({info.total_bytes:,} bytes of tensors)"),
        ("largest shard", f"{info.largest_shard.file} ({format_bytes(info.largest_shard.file_bytes)})"),
        ("largest tensor", f"{info.largest_tensor} ({format_bytes(info.largest_tensor_bytes)})"),
    ]
    lines = [str(info.folder)]
    lines += [f"  {label:<15}{value}" for label, value in rows]
    lines.append("  shards")
    width = max(len(shard.file) for shard in info.shards)
    for shard in info.shards:
        lines.append(
            f"    {shard.file:<{width}}  {format_bytes(shard.file_bytes):>9}  {shard.tensors:>5} tensors"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------
# load and compare: measured runs, each in its own child process


def _add_run_options(sub: argparse.ArgumentParser) -> None:
    _add_checkpoint_argument(sub)
    sub.add_argument("--max-memory", help="offload_folder: RAM weights may fill before the rest goes to disk (300MB)")
    sub.add_argument(
        "--budget",
        help="simulate a smaller machine of this size (8GB): a kernel memory limit where one can be made, else a "
        "watchdog on the memory that cannot be reclaimed",
    )
    sub.add_argument(
        "--dtype",
        default=RUN_DEFAULTS.dtype,
        help=f"{KEEP_DTYPE} (the checkpoint's), {', '.join(LOAD_DTYPES[:-1])} or {LOAD_DTYPES[-1]} "
        "(default %(default)s)",
    )
    sub.add_argument(
        "--cold-cache",
        action="store_true",
        help="drop the checkpoint's pages from the page cache first, so the load pays real disk reads",
    )
    sub.add_argument(
        "--cold-forward",
        action="store_true",
        help="drop them again after the load, so the forwards read offloaded weights from disk",
    )
    sub.add_argument(
        "--forwards",
        type=int,
        default=RUN_DEFAULTS.forwards,
        help="forward passes after the load: the first, then the median of the rest (default %(default)s)",
    )
    sub.add_argument(
        "--forward-tokens",
        type=int,
        default=RUN_DEFAULTS.forward_tokens,
        help="tokens per forward pass (default %(default)s)",
    )
    sub.add_argument("--threads", type=int, help="torch threads in the loading process (default: torch's own)")
    sub.add_argument("--json", action="store_true", help="print the report(s) as one JSON document")


def _add_load(subparsers: Subparsers) -> None:
    sub = _subcommand(subparsers, "load", _run_load)
    _add_run_options(sub)
    # The choices are read from the registry when the parser is built, so a registered strategy is offered.
    sub.add_argument("--strategy", required=True, choices=strategy_names(), help="how to load DIR")
    sub.add_argument("--offload-folder", help="offload_folder: where offloaded weights go (default: a temp folder)")
    sub.add_argument(
        "--offload-via",
        default=RUN_DEFAULTS.offload_via,
        help=f"offload_folder: {' or '.join(OFFLOAD_VIA)} (default %(default)s)",
    )


def _strategy_options(strategy: str, options: dict[str, Any]) -> dict[str, Any]:
    """Drop the options ``strategy`` does not use (``--max-memory`` given to ``compare`` is for offload_folder).

    >>> sorted(_strategy_options("normal", {"max_memory": "1GB", "dtype": "keep"}))
    ['dtype']
    """
    accepts = get_strategy(strategy).accepts
    return {k: v for k, v in options.items() if k not in STRATEGY_OPTIONS or accepts(k)}


def _run_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "max_memory": args.max_memory,
        "budget": args.budget,
        "dtype": args.dtype,
        "cold_cache": args.cold_cache,
        "cold_forward": args.cold_forward,
        "forwards": args.forwards,
        "forward_tokens": args.forward_tokens,
        "threads": args.threads,
    }


def _run_load(args: argparse.Namespace) -> int:
    """load a checkpoint one way in a fresh process and report its memory and time

    Load DIR with one strategy ({strategies}) in a fresh child process, sampled from outside, then run the forward
    passes (--forwards). Prints a summary, or the whole report with --json.
    """
    from .measure.runner import run

    # Passed whole: run() refuses an option this strategy does not use (--max-memory with normal) in one line.
    options = {**_run_options(args), "offload_folder": args.offload_folder, "offload_via": args.offload_via}
    report = run(args.folder, args.strategy, **options)
    print(report.to_json(indent=2) if args.json else report.summary())
    return 0 if report.ok else 1


def _add_compare(subparsers: Subparsers) -> None:
    sub = _subcommand(subparsers, "compare", _run_compare)
    _add_run_options(sub)
    sub.add_argument("--html", metavar="FILE", help="also write the timelines as a self-contained HTML page")


def _run_compare(args: argparse.Namespace) -> int:
    """load a checkpoint with every strategy, each in its own process, and compare

    Run {strategies} on DIR one after another, each in a fresh child process; print a table, or JSON, and optionally
    write a self-contained HTML page with their memory timelines overlaid (for a classroom screen).
    """
    from .measure.render import report_table_text
    from .measure.runner import run

    reports = []
    for strategy in strategy_names():
        options = _strategy_options(strategy, _run_options(args))
        if not args.json:
            print(f"running {strategy} ...", file=sys.stderr, flush=True)
        reports.append(run(args.folder, strategy, **options))
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        print(report_table_text(reports, label_header="strategy"))  # the figures the widgets' table shows
        for report in reports:
            if report.error:
                print(f"{report.strategy}: {report.error}")
    if args.html:
        from .widgets.board import write_html

        write_html(reports, args.html)
        print(f"wrote {args.html}", file=sys.stderr)
    return 0 if all(r.ok for r in reports) else 1


# ------------------------------------------------------------------------------------------------------------
# explain: a learner's own from_pretrained line, read against the installed source, then measured


def _add_explain(subparsers: Subparsers) -> None:
    sub = _subcommand(subparsers, "explain", _run_explain)
    sub.add_argument("call", metavar="CALL", help="your from_pretrained(...) line, in quotes")
    sub.add_argument("--checkpoint", metavar="DIR",
                     help="a checkpoint folder or a model id in the local HF cache: tells which model class and "
                     "config get what from_pretrained does not take (needed by --measure)")
    sub.add_argument("--measure", action="store_true",
                     help="also run the call as written and without each argument found to do nothing, each in "
                     "its own measured process, on --checkpoint")
    sub.add_argument("--forwards", type=int, default=1, help="forward passes after each measured load (default 1)")
    sub.add_argument("--json", action="store_true", help="print one JSON document instead of text")


def _run_explain(args: argparse.Namespace) -> int:
    """say what the installed transformers does with each argument of your from_pretrained(...) call

    Parse CALL (nothing in it is run here) and, for every argument, say what the installed transformers does with
    it: used, popped and ignored, renamed, without effect in this call, passed on to the config or the model, or
    refused. Each verdict cites the file and line of the installed source that decides it. With --measure (and
    --checkpoint) the call is also loaded as written and without each argument found to do nothing, each in its
    own measured process, and the peaks, times and offload folder bytes are shown side by side.
    """
    from .measure.explain import explain_call

    explanation = explain_call(args.call, args.checkpoint, measure=args.measure, forwards=args.forwards)
    print(json.dumps(explanation.to_dict(), indent=2) if args.json else explanation.text())
    return 0


# ------------------------------------------------------------------------------------------------------------
# plan


def _add_plan(subparsers: Subparsers) -> None:
    sub = _subcommand(subparsers, "plan", _run_plan)
    sub.add_argument("folder", metavar="DIR", help="a checkpoint folder, a cached hub id, a folder with only its "
                     "config.json (hf download ID config.json --local-dir DIR), or a catalogue name such as "
                     "llama-3.1-8b (see make-checkpoint --like)")
    sub.add_argument("--ram", help="the RAM to plan for, like 16GB (default this machine's total)")
    sub.add_argument("--dtype", default=RUN_DEFAULTS.dtype,
                     help=f"{KEEP_DTYPE} (the checkpoint's), {', '.join(LOAD_DTYPES)} (default %(default)s)")
    sub.add_argument("--max-memory", help="offload_folder's RAM for weights (default: what the RAM leaves)")
    sub.add_argument("--max-shard-size", default="50GB",
                     help="with config.json alone: the size of the files the weights come in (default %(default)s, "
                     "transformers 5's save_pretrained default; the hub lists a model's files)")


def _run_plan(args: argparse.Namespace) -> int:
    """will this model fit in this much RAM? each strategy's predicted peak, before any weight is read

    Predict each strategy's peak RAM for a checkpoint, or for a model whose config.json alone is on disk, and say
    whether the loading process's baseline plus that peak fits in --ram; for offload_folder, what transformers'
    planner would put on disk. The baseline is measured by a run of a tiny checkpoint.
    """
    from .measure.plan import plan

    result = plan(args.folder, ram=args.ram, dtype=args.dtype, max_memory=args.max_memory,
                  max_shard_size=args.max_shard_size)
    print(result.to_markdown())
    return 0


# The subcommands, in --help order.
_SUBCOMMANDS: list[Callable[[Subparsers], None]] = [
    _add_make_checkpoint, _add_inspect, _add_plan, _add_load, _add_compare, _add_explain,
]
