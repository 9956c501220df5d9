"""A small catalogue of real models' shapes: the ``config.json`` facts of the models learners load most, so that
:func:`~widgetlib.measure.plan.plan` can answer "will it fit?" and
:func:`~widgetlib.core.checkpoints.make_twin` can build a twin (same tensor names, shapes, dtype and tied
weights, random weights) without a download.

Each entry names its hub id and where its numbers were checked: the installed transformers' config class, whose
defaults describe that model (the class's ``@auto_docstring(checkpoint=...)`` line names the checkpoint), or the
model's public ``config.json`` where the defaults do not. ``config`` holds only what differs from the class's
defaults (plus the architecture and dtype), so an entry that says "defaults" states the shape its class's defaults
give. ``published_parameters`` is the parameter count the model's card (or paper) states, with its source:
``tests/test_catalogue.py`` checks that the plan of each entry counts within 3 % of it.

The dtype (what the twin is written in and the plan counts in) is the one the checked config.json names for the
Llama and Qwen entries (bfloat16); for the others it was not checked offline: float32 for GPT-2, float16 for OPT,
bfloat16 for the rest, as their hub files are commonly described. ``dtype=`` / ``--dtype`` changes it.

Pythia-160m (GPT-NeoX) is left out: its config.json could not be checked offline here.

>>> "llama-3.1-8b" in CATALOGUE and CATALOGUE["llama-3.1-8b"]["hub_id"]
'meta-llama/Llama-3.1-8B'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import OptionError

__all__ = ["CATALOGUE", "catalogue_config", "catalogue_entry", "find_entry", "with_layers", "write_catalogue_config"]

# transformers/models/<type>/configuration_<type>.py of the installed transformers (5.x): the line numbers cited
# below are those files' ``@auto_docstring(checkpoint=...)`` lines, above the dataclass fields whose defaults hold.
CATALOGUE: dict[str, dict[str, Any]] = {
    "gpt2": {
        "hub_id": "openai-community/gpt2",
        "model_type": "gpt2",
        "config": {"architectures": ["GPT2LMHeadModel"], "dtype": "float32"},
        "checked": "GPT2Config defaults (configuration_gpt2.py:23 checkpoint openai-community/gpt2; vocab 50257, "
                   "n_embd 768, n_layer 12, n_head 12, tied embeddings)",
        "published_parameters": 124_000_000,
        "parameters_source": "openai-community/gpt2 model card: 'the smallest version of GPT-2, with 124M parameters'",
    },
    "opt-125m": {
        "hub_id": "facebook/opt-125m",
        "model_type": "opt",
        "config": {"architectures": ["OPTForCausalLM"], "dtype": "float16"},
        "checked": "OPTConfig defaults (configuration_opt.py:53-56: vocab 50272, hidden 768, 12 layers, ffn 3072; "
                   "the decorator at :22 names opt-350m, but these defaults are the 125m shape)",
        "published_parameters": 125_000_000,
        "parameters_source": "facebook/opt-125m: 125M in its name and the OPT paper's table 1",
    },
    "llama-3.2-1b": {
        "hub_id": "meta-llama/Llama-3.2-1B",
        "model_type": "llama",
        "config": {
            "architectures": ["LlamaForCausalLM"], "dtype": "bfloat16", "vocab_size": 128256, "hidden_size": 2048,
            "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
            "head_dim": 64, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "tie_word_embeddings": True,
            "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 8192},
            "bos_token_id": 128000, "eos_token_id": 128001,
        },
        "checked": "the model's config.json as quoted in public repositories (e.g. kevinstephano/thunder_model_blocks "
                   "hf_llama/llama_config.py) and the oumi Llama 3.2 recipe table",
        "published_parameters": 1_230_000_000,
        "parameters_source": "meta-llama/Llama-3.2-1B model card: 1.23B parameters",
    },
    "llama-3.1-8b": {
        "hub_id": "meta-llama/Llama-3.1-8B",
        "model_type": "llama",
        "config": {
            "architectures": ["LlamaForCausalLM"], "dtype": "bfloat16", "vocab_size": 128256, "hidden_size": 4096,
            "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
            "head_dim": 128, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
            "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 8192},
            "bos_token_id": 128000, "eos_token_id": 128001,
        },
        "checked": "the oumi Llama 3.1 recipe table (vocab 128,256, hidden 4096, MLP 14,336, 32 layers, 32 heads, 8 KV "
                   "heads, untied) and the slime llama3.1-8B script (rope base 500000, scaling factor 8)",
        "published_parameters": 8_030_000_000,
        "parameters_source": "meta-llama/Llama-3.1-8B model card: 8.03B parameters",
    },
    "qwen2.5-0.5b": {
        "hub_id": "Qwen/Qwen2.5-0.5B",
        "model_type": "qwen2",
        "config": {
            "architectures": ["Qwen2ForCausalLM"], "dtype": "bfloat16", "vocab_size": 151936, "hidden_size": 896,
            "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
            "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "tie_word_embeddings": True,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
            "bos_token_id": 151643, "eos_token_id": 151643,
        },
        "checked": "the model's config.json as quoted in public repositories (a 'Qwen/Qwen2.5-0.5B model config' page)",
        "published_parameters": 490_000_000,
        "parameters_source": "Qwen/Qwen2.5-0.5B model card: 'Number of Parameters: 0.49B (0.36B non-embedding)'",
    },
    "qwen3-0.6b": {
        "hub_id": "Qwen/Qwen3-0.6B",
        "model_type": "qwen3",
        "config": {
            "architectures": ["Qwen3ForCausalLM"], "dtype": "bfloat16", "vocab_size": 151936, "hidden_size": 1024,
            "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8,
            "head_dim": 128, "max_position_embeddings": 40960, "rms_norm_eps": 1e-6, "tie_word_embeddings": True,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
            "bos_token_id": 151643, "eos_token_id": 151645,
        },
        "checked": "the model's config.json as quoted in public repositories (a 'Qwen/Qwen3-0.6B model config' page, "
                   "a copy of https://huggingface.co/Qwen/Qwen3-0.6B/raw/main/config.json)",
        "published_parameters": 600_000_000,
        "parameters_source": "Qwen/Qwen3-0.6B model card: 'Number of Parameters: 0.6B'",
    },
    "mistral-7b-v0.1": {
        "hub_id": "mistralai/Mistral-7B-v0.1",
        "model_type": "mistral",
        "config": {"architectures": ["MistralForCausalLM"], "dtype": "bfloat16", "max_position_embeddings": 32768,
                   "sliding_window": 4096},
        "checked": "MistralConfig defaults (configuration_mistral.py:26 checkpoint mistralai/Mistral-7B-v0.1; vocab "
                   "32000, hidden 4096, MLP 14336, 32 layers, 32 heads, 8 KV heads, untied)",
        "published_parameters": 7_240_000_000,
        "parameters_source": "mistralai/Mistral-7B-v0.1 on the hub: 7.24B parameters (Mistral's announcement: 7.3B)",
    },
    "mixtral-8x7b": {
        "hub_id": "mistralai/Mixtral-8x7B-v0.1",
        "model_type": "mixtral",
        "config": {"architectures": ["MixtralForCausalLM"], "dtype": "bfloat16", "max_position_embeddings": 32768},
        "checked": "MixtralConfig defaults (configuration_mixtral.py:23 checkpoint mistralai/Mixtral-8x7B-v0.1; "
                   "Mistral-7B's attention, 8 experts of MLP 14336, 2 per token)",
        "published_parameters": 46_700_000_000,
        "parameters_source": "the Mixtral of Experts paper and Mistral's announcement: 46.7B total parameters",
    },
    "qwen3-30b-a3b": {
        "hub_id": "Qwen/Qwen3-30B-A3B",
        "model_type": "qwen3_moe",
        "config": {"architectures": ["Qwen3MoeForCausalLM"], "dtype": "bfloat16", "num_hidden_layers": 48,
                   "head_dim": 128, "max_position_embeddings": 40960},
        "checked": "Qwen3MoeConfig defaults (configuration_qwen3_moe.py:23 checkpoint Qwen/Qwen3-30B-A3B-Base; vocab "
                   "151936, hidden 2048, 32 heads, 4 KV heads, 128 experts of 768, 8 per token) except the layer "
                   "count (48, not the default 24) and head_dim 128, both from the slime qwen3-30B-A3B script "
                   "(--num-layers 48, --kv-channels 128)",
        "published_parameters": 30_500_000_000,
        "parameters_source": "Qwen/Qwen3-30B-A3B model card: 30.5B parameters in total, 3.3B activated",
    },
    "phi-3-mini": {
        "hub_id": "microsoft/Phi-3-mini-4k-instruct",
        "model_type": "phi3",
        "config": {"architectures": ["Phi3ForCausalLM"], "dtype": "bfloat16"},
        "checked": "Phi3Config defaults (configuration_phi3.py:24 checkpoint microsoft/Phi-3-mini-4k-instruct; vocab "
                   "32064, hidden 3072, MLP 8192, 32 layers, 32 heads, untied)",
        "published_parameters": 3_800_000_000,
        "parameters_source": "microsoft/Phi-3-mini-4k-instruct model card: 3.8B parameters",
    },
    "gemma-2-2b": {
        "hub_id": "google/gemma-2-2b",
        "model_type": "gemma2",
        "config": {"architectures": ["Gemma2ForCausalLM"], "dtype": "bfloat16"},
        "checked": "Gemma2Config defaults (configuration_gemma2.py: vocab 256000, hidden 2304, MLP 9216, 26 layers, "
                   "8 heads, 4 KV heads, head_dim 256, tied): the 2b shape; the decorator at :28 names gemma2-7b",
        "published_parameters": 2_610_000_000,
        "parameters_source": "google/gemma-2-2b on the hub: 2.61B parameters (Gemma 2 report: 2.6B)",
    },
}


def find_entry(name: str | Path) -> dict[str, Any] | None:
    """The catalogue entry for ``name`` (its catalogue name or its hub id, in any case), or None.

    >>> find_entry("Qwen/Qwen3-0.6B")["model_type"], find_entry("./my-model")
    ('qwen3', None)
    """
    wanted = str(name).lower()
    return next((entry for key, entry in CATALOGUE.items() if wanted in (key, entry["hub_id"].lower())), None)


def catalogue_entry(name: str) -> dict[str, Any]:
    """The catalogue entry for ``name``, or an error sentence that lists the catalogue.

    >>> catalogue_entry("Qwen/Qwen3-0.6B")["model_type"]
    'qwen3'
    """
    entry = find_entry(name)
    if entry is None:
        raise OptionError(
            f"{name!r} is not in the catalogue of real model shapes; use one of {', '.join(CATALOGUE)}.",
            kind="unknown_model",
        )
    return entry


def with_layers(config: Any, layers: int | None) -> Any:
    """``config`` with ``layers`` decoder layers instead of its own (``config`` itself when ``layers`` is None).

    The config is rebuilt from its values, not patched, so the class recomputes what follows from the count; a
    per-layer list such as ``layer_types`` keeps its first ``layers`` entries.

    >>> from transformers import GPT2Config
    >>> with_layers(GPT2Config(), 2).n_layer
    2
    """
    if layers is None:
        return config
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
        raise OptionError(f"layers={layers!r} is not a positive whole number; use 1 or more.", kind="bad_layers")
    values = config.to_dict()
    # GPT-2 calls it n_layer (its attribute_map).
    values[getattr(config, "attribute_map", {}).get("num_hidden_layers", "num_hidden_layers")] = layers
    if isinstance(values.get("layer_types"), list):
        values["layer_types"] = values["layer_types"][:layers]
    return type(config).from_dict(values)


def catalogue_config(name: str, *, layers: int | None = None) -> Any:
    """The transformers config of a catalogue model, with ``layers`` decoder layers instead of its own if given.

    >>> config = catalogue_config("mistral-7b-v0.1", layers=2)
    >>> config.hidden_size, config.num_hidden_layers, config.num_key_value_heads
    (4096, 2, 8)
    """
    from transformers import AutoConfig

    entry = catalogue_entry(name)
    return with_layers(AutoConfig.for_model(entry["model_type"], **entry["config"]), layers)


def write_catalogue_config(name: str, folder: str | Path, *, layers: int | None = None) -> Path:
    """Save the catalogue model's ``config.json`` into ``folder`` (what ``hf download ID config.json`` gives).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print((write_catalogue_config("gpt2", tmp) / "config.json").is_file())
    True
    """
    folder = Path(folder)
    catalogue_config(name, layers=layers).save_pretrained(folder)
    return folder
