# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 01 · Normal loading, and the copies that make its peak
#
# *Step through a lesson with **Shift+Enter**, one cell at a time, to watch each load as it happens. Under
# Run All, JupyterLab shows the notebook's last cell while the cells above it run: a panel or board brings its
# plot back into view when its load starts; to watch any other plot, scroll up to it.*
#
# **What you will learn**
#
# - the textbook PyTorch way to load weights: build the model, read the state dict, `load_state_dict`;
# - why that holds **two copies** of every weight at its peak, measured on this machine;
# - where each copy lives (anonymous or file-backed memory), read off the events on the plot.

# %%
import importlib.util

if importlib.util.find_spec("widgetlib") is None:  # a Jupyter without Offload Lab: install the clone it is in
    get_ipython().run_line_magic("pip", "install --quiet ..")  # noqa: F821 (Offload Lab is not on PyPI)

from IPython.display import display

import widgetlib as lab
from widgetlib import teach

versions = teach.print_versions()

# %% [markdown]
# ## The idea
#
# Before `from_pretrained` did it for you, loading a model looked like this:
#
# ```python
# model = LlamaForCausalLM(config)           # 1. every weight allocated and filled with random numbers
# state_dict = load_file("model.safetensors") # 2. every weight read from the checkpoint
# model.load_state_dict(state_dict)           # 3. values copied from 2 into 1
# del state_dict                              # 4. the second copy goes
# ```
#
# Step 1 allocates a full model of random weights that will be thrown away. Step 2 brings a second full set of
# weights. During step 3 both exist, so the peak is about **two models**, even though the end result is one.
# This lab calls this strategy `normal`, and the runner does these steps and marks each on the plot, with one
# difference: for step 2 it reads each shard with `pread` into memory of its own (`read_shard`, the way
# transformers reads files on Windows), one shard at a time. `safetensors.torch.load_file` would instead *map*
# the file (safetensors/torch.py, `load_file` opens it with `safe_open`, an mmap): copy 2 would then start as
# file-backed pages and become anonymous only as `load_state_dict` copies it. Either way it is a second copy.

# %%
folder = lab.demo_checkpoint()
info = lab.inspect_checkpoint(folder)
predicted = lab.estimate_peak(info, "normal")
teach.say(
    f"Checkpoint: **{teach.fmt(info.total_bytes)}** in {len(info.shards)} shards. Predicted peak above the "
    f"process's baseline: **{teach.fmt(predicted.peak_above_baseline_bytes)}** ({predicted.explanation})."
)

# %% [markdown]
# ## Exercise 1: predict before you look
#
# Write your prediction of the peak above baseline, in bytes, as an expression of `info` (for example a
# multiple of `info.total_bytes`). The check runs after the measurement below.

# %%
my_prediction = ...

# %% [markdown]
# ## The run
#
# The panel loads the checkpoint in a fresh Python process, so your kernel holds none of it, and samples that
# process's RAM from outside many times a second. The markers are the loader's own events; hover over them.

# %%
panel = lab.StrategyPanel(folder, strategy="normal")
display(panel)

# %%
report = panel.run()
assert report is not None and report.ok, panel.message or (report and report.error)

# %% [markdown]
# ## What you just saw

# %%
build = teach.growth(report, "phase", "model_built")
read = teach.growth(report, "model_built", "weights_assigned")
top, before_top = teach.peak_moment(report)
teach.say(teach.peak_sentence(report))
teach.say(
    f"- Building the model with random weights added **{teach.fmt(build['rss'])}** "
    f"({teach.fmt(build['anon'])} anonymous): copy 1, in {teach.which_memory(build)}.\n"
    f"- Reading the state dict and copying it in added **{teach.fmt(read['rss'])}** on top "
    f"({teach.fmt(read['anon'])} anonymous, {teach.fmt(read['file'])} file-backed): copy 2, in "
    f"{teach.which_memory(read)}.\n"
    f"- The highest sample ({teach.fmt(top.rss_bytes)}) came right after **{before_top.label}**. The kernel's "
    f"peak, {teach.fmt(report.peak_rss_bytes)}, is the figure reported; the sampled curve reached "
    f"{teach.fmt(report.sampled_peak_rss_bytes)}.\n"
    f"- The prediction was {teach.fmt(report.predicted_peak_rss_bytes)}; measured {teach.fmt(report.peak_rss_bytes)}."
)
freed = teach.sample_at(report, teach.first_event(report, "state_dict_freed").t_s).rss_bytes - report.baseline_rss_bytes
kept = freed - build["rss"]
teach.say(
    f"After the state dict was freed, RSS was {teach.fmt(freed)} above baseline: "
    + (f"{teach.fmt(kept)} more than the model alone. The allocator kept the freed memory for reuse instead of "
       "returning it to the OS (lesson 00)." if kept > 0.2 * info.total_bytes else
       "about the model alone; the freed copy went back to the OS.")
)
teach.say(teach.event_table(report))

# %%
# What this lesson teaches, checked on this run with honest margins.
assert report.peak_ratio >= 1.6, f"normal loading should hold about two copies, measured {report.peak_ratio}x"
# Each copy is checked where the sampler (100 readings a second) saw its phase; a small checkpoint can build
# or read between two readings, and then the kernel's peak above is the proof.
if teach.sampled_between(report, "phase", "model_built") >= 10 and build["anon"] is not None:
    assert build["anon"] >= 0.8 * info.total_bytes, "the random-weight model is a full copy in anonymous memory"
if teach.sampled_between(report, "model_built", "weights_assigned") >= 10:
    assert read["rss"] >= 0.8 * info.total_bytes, "the state dict is a second full copy next to it"

# %% [markdown]
# The table lists each event with the RSS just after it. Look for the two steps where RSS jumps by a
# checkpoint's worth: building the random model, and reading the state dict into it.

# %%
teach.check_normal_peak(my_prediction, report)

# %% [markdown]
# ## Experiment
#
# Change the **shard count**: `StrategyPanel(demo_checkpoint(shards=2), strategy="normal")` (or the panel's
# shards control), then run it again. Look at whether the peak moves: the random model is a full copy whatever
# the shards, so fewer, larger shards change when the second copy arrives, not how big the peak is.
#
# ## Exercise 2: when were both copies in RAM?
#
# Each event has a *kind* (`"model_built"`, `"shard_read"`, `"state_dict_read"`, `"weights_assigned"`,
# `"state_dict_freed"`, ...). From which event on were both copies, the random model and the whole state dict,
# in RAM? Answer with its kind; the event table above shows the RSS just after each event.

# %%
answer = ...
teach.check_copies_at_peak(answer, report)

# %% [markdown]
# ## Summary
#
# - `normal` loading builds a random model and then reads the checkpoint next to it: **two copies** at the peak,
#   measured above as the ratio of peak to checkpoint.
# - Copy 1 is anonymous (heap) memory; the table shows where copy 2 lived in this run.
# - The random weights are pure waste. Lesson 02 removes them: build the model *empty*, on the meta device.
