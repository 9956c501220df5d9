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
# transformers reads files on Windows), one shard at a time, so copy 2 is anonymous memory.
#
# `safetensors.torch.load_file` would instead *map* the file: its `backend` defaults to `"mmap"`, and it returns
# the tensors of `safe_open(filename, ..., backend=backend)` (safetensors/torch.py, `def load_file`, in the
# safetensors installed here). Copy 2 is then the file's own pages: `load_state_dict` reads them to copy the
# values into copy 1, which already holds anonymous memory, so the process grows in **file-backed** memory, and
# nothing becomes anonymous; `del state_dict` unmaps them (they stay in the page cache). A cell after the run
# measures it in a child process, on one shard. Either way the peak holds two copies; a mapped one is a copy the
# kernel could drop under pressure and read again.

# %%
folder = lab.demo_checkpoint()
info = lab.inspect_checkpoint(folder)
teach.say(f"Checkpoint: **{teach.fmt(info.total_bytes)}** in {len(info.shards)} shards.")

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
# ## Exercise 1: the check
#
# Your prediction against the run's peak. Run this cell; change `my_prediction` above and run both cells again
# if it is off.

# %%
teach.check_normal_peak(my_prediction, report)

# %% [markdown]
# Now the lab's own prediction, made from the checkpoint's headers alone (it needs no run), and its arithmetic:

# %%
predicted = lab.estimate_peak(info, "normal")
teach.say(
    f"Predicted peak above the process's baseline: **{teach.fmt(predicted.peak_above_baseline_bytes)}** "
    f"({predicted.explanation}); measured {teach.fmt(report.peak_above_baseline_bytes)}, "
    f"{report.peak_above_baseline_bytes / predicted.peak_above_baseline_bytes:.2f} times the prediction."
)

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
    f"{teach.fmt(report.sampled_peak_rss_bytes)}."
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

# %% [markdown]
# ## Copy 2 mapped: what `load_file` would have done
#
# The runner read copy 2 into memory of its own. Here is the installed safetensors' `load_file`, then one shard
# read the way it reads it: mapped, and copied into tensors that already hold their memory (copy 1), as
# `load_state_dict` copies. It runs in a child process, measured from outside, so this kernel imports no torch.

# %%
for quote in (teach.source_quote("safetensors", "torch.py", r"^def load_file\(", before=0, after=5, limit=1)
              + teach.source_quote("safetensors", "torch.py", r"with safe_open\(filename", before=0, after=1, limit=1)):
    display(quote)
shard = info.largest_shard
steps = teach.mapped_copy_probe(folder / shard.file)
before_copy, copied, unmapped = steps["before_copy"], steps["copied"], steps["unmapped"]
if before_copy.rss_file_bytes is not None:
    mapped_grew = copied.rss_file_bytes - before_copy.rss_file_bytes
    anon_grew = copied.rss_anon_bytes - before_copy.rss_anon_bytes
    teach.say(
        f"Copying the {teach.fmt(shard.tensor_bytes)} of `{shard.file}` out of the mapping grew the process's "
        f"file-backed memory by **{teach.fmt(mapped_grew)}** and its anonymous memory by "
        f"**{teach.fmt(anon_grew)}**: the mapped copy 2 is the file's pages, and it stays file-backed. Deleting "
        f"it took {teach.fmt(copied.rss_file_bytes - unmapped.rss_file_bytes)} of file-backed memory away."
    )
    assert mapped_grew >= 0.8 * shard.tensor_bytes, "copying out of a mapping faults the file's pages in"
    assert anon_grew < 0.2 * shard.tensor_bytes + 4_000_000, "nothing of the mapped copy becomes anonymous"
else:
    teach.say("This OS does not split RSS into anonymous and file-backed memory, so the split is not shown here.")

# %% [markdown]
# ## Experiment
#
# Change the **shard count**: set `shards` below (1, 2, or more than the checkpoint above has) and run the cell;
# it loads a checkpoint of the same size with that many shards, the same way. Expected: the peak stays at about
# two copies whatever the shards, because the random model is a full copy anyway; fewer, larger shards change
# when the second copy arrives (the `shard_read` markers), not how big the peak is.

# %%
shards = 2
experiment_plot = lab.MemoryPlot(title=f"normal loading, {shards} shard(s)")
display(experiment_plot.figure)
trial = teach.run_live(experiment_plot, lab.demo_checkpoint(shards=shards), "normal", forwards=1)
assert trial.ok, trial.error
teach.say(
    f"With {shards} shard(s): peak {teach.fmt(trial.peak_above_baseline_bytes)} above baseline, "
    f"{trial.peak_ratio:.2f}× the checkpoint; the run above, with {len(info.shards)}: {report.peak_ratio:.2f}×."
)

# %% [markdown]
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
