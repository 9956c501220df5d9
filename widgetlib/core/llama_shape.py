"""The shape of a synthetic LLaMA for a parameter target: vocabulary, hidden size, depth, MLP width.

Pure arithmetic (no torch, no transformers), used by :mod:`widgetlib.core.checkpoints` to build checkpoints
that look like real LLaMAs of any size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Plan", "llama_parameters", "plan_model"]


@dataclass(frozen=True)
class Plan:
    """The LLaMA shape chosen for a parameter target (head_dim 64, as many KV heads as query heads).

    >>> Plan(vocab_size=256, hidden_size=64, intermediate_size=171, num_layers=4).num_heads
    1
    """

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int

    @property
    def num_heads(self) -> int:
        return self.hidden_size // 64

    @property
    def parameters(self) -> int:
        return llama_parameters(self.vocab_size, self.hidden_size, self.intermediate_size, self.num_layers)


def llama_parameters(vocab: int, hidden: int, intermediate: int, layers: int) -> int:
    """Parameters of a LLaMA with untied embeddings and as many KV heads as query heads.

    >>> llama_parameters(32000, 4096, 11008, 32)   # LLaMA-7B's shape (its KV heads equal its heads)
    6738415616
    """
    # embed + lm_head (untied) + per layer: q,k,v,o (hidden x hidden each, since kv heads == heads and
    # head_dim * heads == hidden), gate/up/down (3 * hidden x intermediate), two RMSNorm vectors; final norm.
    per_layer = 4 * hidden * hidden + 3 * hidden * intermediate + 2 * hidden
    return 2 * vocab * hidden + layers * per_layer + hidden


def _choose_vocab(hidden: int, target_params: int) -> int:
    # LLaMA's 32000 tokens when the two embedding matrices stay under ~30 % of the model, fewer for tiny
    # models (otherwise a 20 MB "LLM" would be nearly all embeddings and show little about layers).
    for vocab in (32000, 16000, 8000, 4096, 2048, 1024, 512):
        if 2 * vocab * hidden <= 0.3 * target_params:
            return vocab
    return 256


def plan_model(target_params: int) -> Plan:
    """Pick vocab/hidden/layers like a real LLaMA, then solve intermediate_size to hit ``target_params``.

    >>> plan = plan_model(100_000_000)
    >>> abs(plan.parameters - 100_000_000) < 0.005 * 100_000_000, plan.hidden_size % 64
    (True, 0)
    """
    # Depth grows with size (aspect hidden/layers ~64, like small GPT/LLaMA models), capped at LLaMA-7B's 32.
    layers = min(32, max(4, round((0.75 * target_params / (12 * 64 * 64)) ** (1 / 3))))
    # A layer is ~12 * hidden^2 parameters when intermediate ~ 8/3 hidden (LLaMA's ratio).
    ideal_hidden = math.sqrt(max(target_params, 1) / (12 * layers))
    best: tuple[float, Plan] | None = None
    for hidden in range(64, max(128, int(ideal_hidden * 2)) + 1, 64):
        vocab = _choose_vocab(hidden, target_params)
        fixed = llama_parameters(vocab, hidden, 0, layers)
        intermediate = (target_params - fixed) // (3 * hidden * layers)
        if intermediate < 1:
            continue
        score = abs(math.log(intermediate / hidden / (8 / 3)))
        # Big real models use hidden sizes that are multiples of 256 (4096 for LLaMA-7B); prefer those.
        score += 0.06 if hidden >= 1024 and hidden % 256 else 0.0
        if best is None or score < best[0]:
            best = (score, Plan(vocab, hidden, intermediate, layers))
    if best is None:
        raise AssertionError(f"no LLaMA shape for {target_params} parameters")  # guarded by _MIN_PARAMETERS
    plan = best[1]
    # Rounding intermediate_size down leaves up to 3*hidden*layers parameters unplaced; for tiny models that
    # is a few tenths of a percent, so spend it on extra vocabulary rows (2*hidden parameters each).
    missing = target_params - plan.parameters
    if missing > 0.001 * target_params:
        plan = Plan(
            plan.vocab_size + missing // (2 * plan.hidden_size),
            plan.hidden_size,
            plan.intermediate_size,
            plan.num_layers,
        )
    return plan
