"""A learner's own models: turn a Hugging Face hub id (``"gpt2"``, ``"Qwen/Qwen2.5-0.5B"``) into its folder in
the local Hugging Face cache, offline.

Offload Lab never downloads anything; a model the learner already has (because ``from_pretrained`` or
``hf download`` fetched it once) is a checkpoint folder like any other: ``snapshots/<commit>/`` in the cache,
which :func:`~widgetlib.core.checkpoints.checkpoint_folder` uses wherever a folder is accepted. The lookup is
huggingface_hub's own (``snapshot_download(local_files_only=True)``: ``refs/main`` -> ``snapshots/<commit>``),
so the cache layout is never re-implemented here. Nothing in this module imports torch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path, PurePath

from .errors import CheckpointError

__all__ = ["download_command", "hub_cache_dir", "looks_like_repo_id", "resolve_cached_model"]


def looks_like_repo_id(checkpoint: str | os.PathLike[str]) -> bool:
    """True when ``checkpoint`` is written like a hub model id (``name`` or ``namespace/name``), not a path.

    huggingface_hub's own rule (``validate_repo_id``: letters, digits, ``-_.``, at most one ``/``, no ``--`` or
    ``..``); an absolute path, ``./x``, ``~/x`` or ``a/b/c`` is never a hub id.

    >>> looks_like_repo_id("gpt2"), looks_like_repo_id("Qwen/Qwen2.5-0.5B")
    (True, True)
    >>> looks_like_repo_id("/tmp/gpt2"), looks_like_repo_id("./gpt2"), looks_like_repo_id("~/models/x")
    (False, False, False)
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    text = _as_text(checkpoint)
    if not text or text.startswith(("~", ".", "/")) or PurePath(text).is_absolute():
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, from the environment as it is now.

    The same precedence as huggingface_hub (constants.py:160-185 in 2.4): ``$HF_HUB_CACHE``, else the legacy
    ``$HUGGINGFACE_HUB_CACHE``, else ``$HF_HOME/hub``, else ``$XDG_CACHE_HOME/huggingface/hub``, else
    ``~/.cache/huggingface/hub``. Read at call time rather than from ``huggingface_hub.constants``, which
    freezes them when it is first imported: a learner who sets ``HF_HOME`` in the notebook is obeyed.

    >>> import os
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"HF_HOME": "/data/hf"}):
    ...     for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
    ...         _ = os.environ.pop(name, None)
    ...     print(hub_cache_dir().as_posix())
    /data/hf/hub
    """

    def expand(value: str) -> str:
        return os.path.expandvars(os.path.expanduser(value))

    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(expand(explicit))
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    return Path(expand(home)) / "hub"


def download_command(repo_id: str) -> str:
    """The command that fetches ``repo_id`` into the cache (the ``hf`` CLI that huggingface_hub installs).

    >>> download_command("Qwen/Qwen2.5-0.5B")
    'hf download Qwen/Qwen2.5-0.5B'
    """
    return f"hf download {repo_id}"


def resolve_cached_model(repo_id: str | os.PathLike[str]) -> Path:
    """Return the snapshot folder of hub model ``repo_id`` in the local cache, without any network access.

    Raises :class:`CheckpointError` (``kind="not_cached"``) naming the id, the cache and the command that
    would download it when the model is not there (or only partly: a cached tree listing that shows files
    missing).

    >>> import tempfile
    >>> from unittest import mock
    >>> with tempfile.TemporaryDirectory() as tmp, mock.patch.dict(os.environ, {"HF_HUB_CACHE": tmp}):
    ...     repo = Path(tmp, "models--org--tiny")  # as huggingface_hub lays a model out
    ...     (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    ...     (repo / "refs").mkdir()
    ...     _ = (repo / "refs" / "main").write_text("0" * 40)
    ...     print(resolve_cached_model("org/tiny").relative_to(Path(tmp).resolve()).as_posix())
    models--org--tiny/snapshots/0000000000000000000000000000000000000000
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    name = _as_text(repo_id)
    cache = hub_cache_dir()
    try:
        # local_files_only=True skips every Hub request (_snapshot_download.py:274) and resolves refs/main to
        # snapshots/<commit> on disk (_snapshot_download.py:329-386); it raises LocalEntryNotFoundError (or its
        # subclass IncompleteSnapshotError) when the snapshot is absent or known to be incomplete.
        folder = snapshot_download(name, repo_type="model", cache_dir=cache, local_files_only=True)
    except LocalEntryNotFoundError:
        raise not_cached_error(name, cache) from None
    return Path(folder)


def not_cached_error(repo_id: str, cache: Path, *, partly: bool = False) -> CheckpointError:
    """The one sentence a learner reads when ``repo_id`` is neither a folder nor (fully) in the hub cache.

    >>> err = not_cached_error("gpt2", Path("/hf/hub"))
    >>> err.kind, "/hf/hub;" in str(err), "`hf download gpt2`" in str(err)
    ('not_cached', True, True)
    """
    if partly:
        return CheckpointError(
            f"Only part of the model {repo_id} is in the local Hugging Face cache {cache} (no config.json or no "
            f"weights file); download the whole model once with `{download_command(repo_id)}`.",
            kind="not_cached",
        )
    return CheckpointError(
        f"There is no folder named {repo_id} here and no model {repo_id} in the local Hugging Face cache {cache}; "
        f"check the path, or download the model once with `{download_command(repo_id)}` (Offload Lab itself "
        "never downloads).",
        kind="not_cached",
    )


def _as_text(checkpoint: str | os.PathLike[str]) -> str:
    # A widget or the runner may hand over Path("Qwen/Qwen2.5-0.5B"), which Windows spells with a backslash.
    if isinstance(checkpoint, PurePath):
        return checkpoint.as_posix()
    text = os.fspath(checkpoint)
    return text.replace("\\", "/") if sys.platform == "win32" else text

