# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 02 · `low_cpu_mem_usage` and the meta device
#
# *Step through a lesson with **Shift+Enter**, one cell at a time, to watch each load as it happens. Under
# Run All, JupyterLab shows the notebook's last cell while the cells above it run: a panel or board brings its
# plot back into view when its load starts; to watch any other plot, scroll up to it.*
#
# **What you will learn**
#
# - what `low_cpu_mem_usage=True` did in older transformers, and what it does in *yours*, read from the source
#   of the transformers installed here and measured with the flag on and off;
# - the **meta device**: a model whose weights have a shape and a dtype but no memory;
# - how transformers 5 builds the empty model (`torch.device("meta")`, then the non-persistent buffers made
#   again and given their values by `_init_weights`), which is PyTorch's own recipe, and the pitfalls of a
#   hand-rolled meta loader: buffers that no checkpoint holds stay on meta and the forward pass fails, or are
#   made again without their values and the logits are silently wrong.

# %%
import importlib.util

if importlib.util.find_spec("widgetlib") is None:  # a Jupyter without Offload Lab: install the clone it is in
    get_ipython().run_line_magic("pip", "install --quiet ..")  # noqa: F821 (Offload Lab is not on PyPI)

import torch
from accelerate import init_empty_weights  # noqa: F401 (yours to use in Exercise 2)
from IPython.display import display
from transformers import AutoConfig, AutoModelForCausalLM

import widgetlib as lab
from widgetlib import teach

versions = teach.print_versions()

# %% [markdown]
# ## The idea
#
# Lesson 01's random weights were built only to be overwritten. The fix is to build the model **empty**: every
# parameter is created on the `meta` device, which records shape and dtype and allocates nothing. The loader
# then reads the checkpoint and makes the loaded tensors the parameters, one copy in all.
#
# In early transformers 4 releases, `from_pretrained` built the model empty only when asked with
# `low_cpu_mem_usage=True`; by default it allocated every parameter first (with `_fast_init`, uninitialised
# `torch.empty` memory rather than random numbers, but memory all the same). Late 4.x releases already ignored
# the flag: transformers pull request [36963](https://github.com/huggingface/transformers/pull/36963) removed
# the argument, and pull request [38792](https://github.com/huggingface/transformers/pull/38792) its last
# traces; transformers 5 always builds the model empty. Many notes online still say "pass
# `low_cpu_mem_usage=True`". Does it still matter? Ask the installed library itself.

# %%
truth = lab.low_cpu_mem_usage_truth()
teach.say(truth["evidence"])
if truth["source_line"] is not None:
    display(teach.quote_lines(truth["source_file"], truth["source_line"], before=1, after=2))

# %% [markdown]
# The same reading works for any argument of any `from_pretrained(...)` line, yours included:
# `lab.explain_call(line)` says what the installed transformers does with each one and cites the line that
# decides it (lesson 06 runs the notes' own call through it, measured). Here, a line as tutorials write it:

# %%
display(lab.explain_call('AutoModelForCausalLM.from_pretrained("gpt2", low_cpu_mem_usage=True)'))

# %% [markdown]
# ## Measure it: the flag on and off
#
# Two runs of `from_pretrained`, identical except for the flag, drawn on one plot.

# %%
folder = lab.demo_checkpoint()
info = lab.inspect_checkpoint(folder)
plot = lab.MemoryPlot(title="from_pretrained with low_cpu_mem_usage=True and False")
display(plot.figure)

# %%
with_flag = teach.run_live(plot, folder, "low_cpu_mem_usage", low_cpu_mem_usage=True,
                           note="low_cpu_mem_usage=True")
without_flag = teach.run_live(plot, folder, "low_cpu_mem_usage", low_cpu_mem_usage=False,
                              note="low_cpu_mem_usage=False")
assert with_flag.ok and without_flag.ok, (with_flag.error, without_flag.error)

# %% [markdown]
# ### What you just saw

# %%
a, b = with_flag.peak_above_baseline_bytes, without_flag.peak_above_baseline_bytes
teach.say(
    f"- With the flag: {teach.fmt(a)} above baseline ({with_flag.peak_ratio:.2f}× the checkpoint).\n"
    f"- Without it: {teach.fmt(b)} above baseline ({without_flag.peak_ratio:.2f}× the checkpoint).\n"
    f"- The run itself recorded what the source says: "
    f"*{with_flag.details['low_cpu_mem_usage_truth']['evidence']}*\n"
    f"- Both runs produced {'the same' if teach.same_logits([with_flag, without_flag]) else 'different'} logits."
)
if truth["honoured"] is False and teach.peak_is_exact(with_flag) and teach.peak_is_exact(without_flag):
    # The installed transformers ignores the flag: both runs must look alike, and both hold about one copy.
    assert abs(a - b) <= 0.15 * max(a, b) + 5_000_000, "an ignored flag cannot change the peak"
    assert max(a, b) <= teach.one_copy_limit(info.total_bytes), "meta-device loading holds one copy"

# %% [markdown]
# ## Exercise 1
#
# In the transformers installed here, does `low_cpu_mem_usage` change anything? Answer `True` or `False`.

# %%
answer = ...
teach.check_low_cpu_mem_usage(answer, truth, with_flag, without_flag)

# %% [markdown]
# ## How transformers builds the empty model
#
# The installed `from_pretrained` creates the model under `torch.device("meta")`. After the checkpoint's tensors
# are assigned, two steps remain for what no checkpoint holds, in this order: the **non-persistent buffers** are
# made again on a real device, as uninitialised memory (`torch.empty_like`), and then every module not loaded
# is initialised, which is where those buffers get their **values**: `_init_weights` computes the rotary
# embedding's `inv_freq` from the config and copies it in. From its source (found by what each step does, so a
# newer transformers that moved a line is still quoted, and one that changed a step fails with its version):

# %%
steps = {
    "built on meta": teach.find_source(
        "transformers", "modeling_utils.py",
        [r'init_contexts\.extend\(\[torch\.device\("meta"\), init\.meta_device',
         r'init_contexts.*torch\.device\("meta"\)(?!, set_quantized)'],  # not the branch for quantized models
        what='builds the model under torch.device("meta")', before=4, after=0),
    "the two steps, in order": teach.find_source(
        "transformers", "modeling_utils.py",
        [r"model\._move_missing_keys_from_meta_to_device\(", r"_move_missing_keys_from_meta_to_device\(\s*$"],
        what="moves the keys not loaded off meta, then initialises them", before=2, after=8),
    "buffers made again, empty": teach.find_source(
        "transformers", "modeling_utils.py",
        [r"move back non-persistent buffers", r"for key, buffer in self\.named_non_persistent_buffers\(\):"],
        what="makes the non-persistent buffers again on a real device", before=0, after=4),
    "their values (_init_weights)": teach.find_source(
        "transformers", "modeling_utils.py",
        [r"init\.copy_\(module\.inv_freq", r"\.copy_\(module\.inv_freq"],
        what="writes the rotary embedding's inv_freq values in _init_weights", before=10, after=1),
}
for step, quote in steps.items():
    teach.say(f"**{step}**")
    display(quote)

# %% [markdown]
# That is PyTorch's own recipe for loading without a second copy: build the module under
# `torch.device("meta")`, read the state dict lazily (`torch.load(..., mmap=True)` or a safetensors file), and
# `load_state_dict(state_dict, assign=True)`, which makes the loaded tensors the parameters instead of copying
# into them. accelerate's `init_empty_weights()` is an older way to the same end: it puts only the parameters
# on meta and keeps buffers real.
#
# ## The meta device by hand
#
# Watch this kernel's RSS while a model of the checkpoint's size is "built" under `torch.device("meta")`. The
# first build of an architecture in a process also imports its modeling code, which costs RSS of its own; so the
# model is built once before the measurement, and the second build is the one measured:

# %%
config = AutoConfig.from_pretrained(folder)
with torch.device("meta"):
    AutoModelForCausalLM.from_config(config)  # imports the modeling code: not what is measured
before = lab.read_memory().rss_bytes
with torch.device("meta"):
    empty = AutoModelForCausalLM.from_config(config)
after = lab.read_memory().rss_bytes
weights = sum(p.numel() * p.element_size() for p in empty.parameters())
devices = sorted({p.device.type for p in empty.parameters()})
teach.say(
    f"A model with {teach.fmt(weights)} of weights, parameters on {devices}, built for "
    f"{teach.fmt(after - before)} of RSS."
)
# Module objects cost a little RSS of their own; the weights, none.
assert devices == ["meta"] and after - before < 0.5 * weights + 20_000_000

# %% [markdown]
# ## The pitfall: a hand-rolled meta loader must make the non-persistent buffers again
#
# A model holds **parameters** (the weights, saved in the checkpoint) and **buffers** (tensors that are not
# trained). Some buffers are *non-persistent*: computed when the model is built and never saved. LLaMA's
# rotary-embedding `inv_freq` is one. Build the model with `with torch.device("meta"):` and those buffers are on
# meta too; loading the checkpoint fills every parameter but nothing fills them. transformers makes them again
# and then writes their values (the source above); a loader written by hand must do both, or build under
# `init_empty_weights()`, which keeps buffers real. Three hand-rolled ways are built and filled below, shard by
# shard, then run: on meta and left so; on meta with the buffers made again by `torch.empty_like` only (the
# first of the two steps, copied alone); and under `init_empty_weights()`.

# %%
results = {}
for how in ("meta_device", "meta_device + empty_like", "init_empty_weights"):
    model = teach.fill_weights(lab.build_empty_model(folder, how=how.split(" + ")[0]), folder)
    meta_buffers = [name for name, buf in model.named_buffers() if buf.device.type == "meta"]
    if how.endswith("empty_like"):  # the buffers made again as transformers' first step does, and no more
        for name in meta_buffers:
            owner, _, attr = name.rpartition(".")
            model.get_submodule(owner)._buffers[attr] = torch.empty_like(model.get_buffer(name), device="cpu")
    try:
        checksum, _ = lab.forward_checksum(model)
        results[how] = (meta_buffers, "forward ran", checksum)
    except (NotImplementedError, RuntimeError) as exc:  # the error a learner meets, caught to show it
        results[how] = (meta_buffers, f"{type(exc).__name__}: {exc}", None)
    del model

teach.say("\n".join(
    f"- `{how}`: buffers on meta after the build: {buffers or 'none'}; forward: **{outcome}**"
    + ("" if checksum is None else
       f", logits {'bit-identical to' if checksum == with_flag.logits_sha256 else 'DIFFERENT from'} "
       "`from_pretrained`'s")
    for how, (buffers, outcome, checksum) in results.items()
))
assert results["meta_device"][2] is None and "meta" in results["meta_device"][1].lower()
assert results["init_empty_weights"][2] == with_flag.logits_sha256, "same weights, same logits as from_pretrained"
assert results["meta_device + empty_like"][2] != with_flag.logits_sha256, "empty buffers give other logits"

# %% [markdown]
# The model built with `init_empty_weights()` gives **bit-identical logits** to `from_pretrained`'s: the same
# weights, loaded another way. The one whose buffers were only made again runs without an error and gives other
# logits: `torch.empty_like` returns whatever the memory held, and the rotary embedding then turns each position
# by angles from that. Nothing warns; only a comparison shows it. Giving the buffers their values is the second
# step above, and running it on the rotary module makes the logits right:

# %%
model = teach.fill_weights(lab.build_empty_model(folder, how="meta_device"), folder)
for name, buf in list(model.named_buffers()):
    if buf.device.type == "meta":
        owner, _, attr = name.rpartition(".")
        model.get_submodule(owner)._buffers[attr] = torch.empty_like(buf, device="cpu")  # step 1: made again
for module in model.modules():
    if "RotaryEmbedding" in type(module).__name__:
        model._init_weights(module)  # step 2: transformers' own _init_weights writes inv_freq (quoted above)
checksum, _ = lab.forward_checksum(model)
del model
teach.say(f"Buffers made again, then `_init_weights` on the rotary module: logits "
          f"**{'bit-identical to' if checksum == with_flag.logits_sha256 else 'DIFFERENT from'}** `from_pretrained`'s.")
assert checksum == with_flag.logits_sha256, "the two steps together give from_pretrained's buffers"

# %% [markdown]
# ## Experiment
#
# Change the **dtype** the checkpoint is loaded in: set `experiment_dtype` below (`"bfloat16"`, `"float16"`, or
# the checkpoint's own `"float32"`) and run the cell; it repeats the run with the flag, on the plot above.
# Expected, for a two-byte dtype: the model keeps about half the anonymous memory of a float32 model's weights
# (two bytes a number instead of four, in memory of its own: converted, no longer pages of the file), and the
# kernel's peak is higher than float32's, because it also counts the float32 file pages the conversion read.

# %%
experiment_dtype = "bfloat16"
experiment = teach.run_live(plot, folder, "low_cpu_mem_usage", dtype=experiment_dtype, note=experiment_dtype)
assert experiment.ok, experiment.error
teach.say(teach.reports_table([with_flag, experiment], [info.dtype, experiment_dtype], label_header="dtype",
                              columns=["peak_above_baseline_bytes", "peak_ratio", "anon_kept_bytes",
                                       "file_kept_bytes"]))
kept_anon, _ = teach.kept_at_end(experiment)
if kept_anon is not None:
    teach.say(f"In {experiment_dtype} the model keeps {teach.fmt(kept_anon)} of anonymous memory, "
              f"{kept_anon / info.total_bytes:.2f}× the {info.dtype} checkpoint; its peak is "
              f"{experiment.peak_ratio:.2f}× against {with_flag.peak_ratio:.2f}× in {info.dtype}.")

# %% [markdown]
# ## Exercise 2
#
# Build an empty model of `config` yourself so that, once the weights are assigned, its forward pass works.
# The check compares its parameters with those of `config`'s model and looks at where they and its buffers are.

# %%
my_empty = ...
teach.check_empty_model(my_empty, config)

# %% [markdown]
# ## Summary
#
# - An empty model on the `meta` device costs no RAM; loading then assigns the checkpoint's tensors to it:
#   **one copy** instead of lesson 01's two.
# - The transformers installed here does that always, under `torch.device("meta")`, and then makes the
#   non-persistent buffers again; the source and the two runs above show what the `low_cpu_mem_usage` flag
#   does in it.
# - A loader of your own on the meta device must make the non-persistent buffers again **and give them their
#   values** (transformers' `_init_weights` step), or build under `init_empty_weights()`, which keeps them real:
#   left on meta, the forward fails with a meta-tensor error; made again empty, it runs and gives wrong logits.
# - Lesson 03 goes further: what if even one copy does not fit?
