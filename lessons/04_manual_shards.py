# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 04 · Loading shards by hand
#
# *Step through a lesson with **Shift+Enter**, one cell at a time, to watch each load as it happens. Under
# Run All, JupyterLab shows the notebook's last cell while the cells above it run: a panel or board brings its
# plot back into view when its load starts; to watch any other plot, scroll up to it.*
#
# **What you will learn**
#
# - what a sharded checkpoint is: an **index** file whose `weight_map` says which file holds which tensor;
# - how to load one shard at a time into an empty model, and the **staircase** it draws;
# - the seed notes' "offload each shard to disk, then load them all back" scheme, measured: what it saves and
#   what it does not.

# %%
import importlib.util

if importlib.util.find_spec("widgetlib") is None:  # a Jupyter without Offload Lab: install the clone it is in
    get_ipython().run_line_magic("pip", "install --quiet ..")  # noqa: F821 (Offload Lab is not on PyPI)

import json
from collections import Counter

from IPython.display import display

import widgetlib as lab
from widgetlib import teach

versions = teach.print_versions()

# %% [markdown]
# ## The index
#
# Big checkpoints are split into several files (*shards*). Next to them sits an index, a small JSON file that
# maps each tensor name to its shard. A loader that needs one tensor opens one file.

# %%
folder = lab.demo_checkpoint()
info = lab.inspect_checkpoint(folder)
index = json.loads((folder / info.index_file).read_text())
per_file = Counter(index["weight_map"].values())
teach.say(
    f"`{info.index_file}`: metadata {index.get('metadata', {})}, {len(index['weight_map'])} tensors in "
    f"{len(per_file)} files."
)
teach.say("\n".join(["| tensor | file |", "|---|---|"]
                    + [f"| `{name}` | {file} |" for name, file in list(index["weight_map"].items())[:6]]
                    + ["| … | … |"]))

# %% [markdown]
# ## Exercise 1
#
# Which file holds `lm_head.weight`? Answer with an expression that reads the index.

# %%
my_file = ...
teach.check_shard_of(my_file, folder, "lm_head.weight")

# %% [markdown]
# ## The idea: one shard at a time
#
# ```python
# model = lab.build_empty_model(folder)             # lesson 02: weights on meta, buffers real
# for path in lab.shard_files(folder):              # in index order
#     tensors = lab.read_shard(path)                # one shard in RAM
#     model.load_state_dict(tensors, strict=False, assign=True)   # they *become* the parameters: no copy
#     del tensors                                   # the dict goes; the tensors live on in the model
# ```
#
# `assign=True` matters: without it, `load_state_dict` copies into the existing parameters, which on meta
# have no memory to copy into. The strategy `manual_shards` does exactly this and marks each step, with one
# refinement: it reads each shard with `read_shard(path, mmap=True)` and touches every page, so the bytes come
# straight from the page cache as *file-backed* memory instead of being copied into fresh anonymous memory
# (same staircase, less work). It runs twice below: on the safetensors checkpoint and on the same weights
# saved as `.bin`.

# %%
panel = lab.StrategyPanel(folder, strategy="manual_shards")
display(panel)

# %%
st = panel.run()
bin_folder = lab.demo_checkpoint(format="bin")  # the same weights, saved as .bin
pickled = teach.run_live(panel.plot, bin_folder, "manual_shards", note=".bin shards")
assert st is not None and st.ok and pickled.ok, (st and st.error, pickled.error)

# %% [markdown]
# ### What you just saw

# %%
def staircase(report):
    """RSS above baseline after each shard was read."""
    base = report.baseline_rss_bytes
    return [(e.label, teach.sample_at(report, e.t_s).rss_bytes - base)
            for e in report.timeline.events if e.kind == "shard_read"]


steps_bin, steps_st = staircase(pickled), staircase(st)
for name, r, steps in (("safetensors", st, steps_st), (".bin", pickled, steps_bin)):
    grown = teach.growth(r, "model_built", "loaded")
    teach.say(
        f"- **{name}** shards, RSS above baseline after each read: "
        + ", ".join(teach.fmt(v) for _, v in steps)
        + f". By the end of the load: {teach.fmt(grown['rss'])}, in {teach.which_memory(grown)}. Peak "
        f"{teach.fmt(r.peak_above_baseline_bytes)} ({r.peak_ratio:.2f}× the checkpoint), forward pass included."
    )
teach.say(f"Both gave {'the same' if teach.same_logits([st, pickled]) else 'different'} logits. Each read adds "
          "one shard, and it stays, as parameters: a staircase that ends at one copy of the model.")
teach.say(teach.event_table(pickled, kinds=("model_built", "shard_read", "shard_freed", "loaded", "forward_done")))
# One copy at a time, checked (the forward pass adds activations and bookkeeping on top).
for r in (st, pickled):
    assert r.peak_above_baseline_bytes <= teach.one_copy_limit(info.total_bytes) or not teach.peak_is_exact(r)
for r, steps in ((pickled, steps_bin), (st, steps_st)):
    # The shards all end up in RAM: the kernel's peak holds at least most of one copy.
    assert r.peak_above_baseline_bytes >= 0.7 * info.total_bytes, r.peak_ratio
    # A small checkpoint loads between two samples (100 per second); where each read was sampled on its own,
    # the staircase must climb.
    if len({value for _, value in steps}) == len(steps) > 1:
        assert steps[-1][1] > steps[0][1], "the load climbs shard by shard"

# %% [markdown]
# ## The seed notes' scheme: offload each shard, then load them all back
#
# The notes this lab grew from proposed: load shard 1, write it to disk and free it, load shard 2, write it and
# free it, ... then load all of them back. Here is their scheme, quoted as they wrote it (their figures are for a
# model of three shards). The strategy `manual_shards` with `offload_and_reload=True` does exactly that, with a
# scratch folder.

# %%
notes_scheme = """With Offloading:
1. Load shard 1 → RAM (2.5GB)
2. Offload shard 1 → Disk (free RAM)
3. Load shard 2 → RAM (2.5GB)
4. Offload shard 2 → Disk (free RAM)
5. Load shard 3 → RAM (2.5GB)
6. Load shards 1 & 2 back → RAM (now all 3 in RAM)
Total: Only 2.5GB in RAM at a time during loading"""
notes_shard_gb, notes_model_gb = 2.5, 7.5  # their shard, and their "Total: 7.5GB in RAM at once" for 3 shards
teach.say(f"```\n{notes_scheme}\n```")

# %%
reload = teach.run_live(panel.plot, folder, "manual_shards", offload_and_reload=True,
                        note="offload each shard, then reload all")
assert reload.ok, reload.error

# %% [markdown]
# ### What you just saw

# %%
teach.say(teach.reports_table([st, reload], labels=["one shard at a time", "offload and reload"]))
teach.say(
    f"- Offload-and-reload wrote **{teach.fmt(reload.details.get('scratch_bytes', 0))}** of scratch files and "
    f"took {reload.load_s:.2f} s to load against {st.load_s:.2f} s.\n"
    f"- Its peak was {teach.fmt(reload.peak_above_baseline_bytes)} above baseline against "
    f"{teach.fmt(st.peak_above_baseline_bytes)} for plain shard-by-shard loading.\n"
    "- What the scheme saves: nothing that loading one shard at a time into an empty model does not already "
    "save. What it cannot save: the finished model is one full copy either way; the shards must all come back.\n"
    "- The two runs do not read alike, which is why the peaks may differ: the reload maps its scratch files "
    "(`safetensors.torch.load_file`, lazy: a page comes in when it is read), while `manual_shards` here pages "
    "every shard in as it assigns it. A lower peak for the reload is its laziness, not the writing to disk."
)
if teach.peak_is_exact(reload) and teach.peak_is_exact(st):
    assert reload.peak_above_baseline_bytes >= 0.7 * st.peak_above_baseline_bytes, "it cannot beat one copy"
assert reload.details.get("scratch_bytes", 0) >= 0.9 * info.total_bytes, "every shard was written to disk"

# %% [markdown]
# ### The notes' figures, judged
#
# Their "Total" line says the scheme holds one shard at a time: one shard's share of the model. Their own step 6
# brings every shard back. The runs above, measured the same way:

# %%
largest_share = info.largest_shard.file_bytes / info.total_bytes
peak_shares = {"shard by shard": st.peak_ratio, "offload and reload": reload.peak_ratio}
teach.say(
    f"- The notes: a {notes_shard_gb} GB shard of a {notes_model_gb} GB model in RAM at a time, "
    f"{notes_shard_gb / notes_model_gb:.2f}× the model.\n"
    f"- Here the largest of {len(info.shards)} shards is {teach.fmt(info.largest_shard.file_bytes)}, "
    f"{largest_share:.2f}× the checkpoint. The kernel's peaks: "
    + ", ".join(f"{name} **{ratio:.2f}×**" for name, ratio in peak_shares.items())
    + " the checkpoint, "
    + ("each above the largest shard." if all(r > largest_share for r in peak_shares.values()) else
       "not all of them above the largest shard (this probe's peaks are the best this OS gives).")
    + "\n- What is true in the notes: while the shards are written out one by one (steps 1 to 5), one shard's "
    "reading is in RAM at a time. What is not: \"during loading\" ends with step 6, and a loaded model is every "
    "shard, so the load peaks at one copy of the model at least, plus what a forward pass adds; a smaller shard "
    "makes the staircase's steps smaller, not its top."
)
for r in (st, reload):
    if teach.peak_is_exact(r):  # one copy at least, whatever the shards (the first check above, for both)
        assert r.peak_above_baseline_bytes >= 0.7 * info.total_bytes, r.peak_ratio

# %% [markdown]
# ## Experiment
#
# Change the **shard count**: set `experiment_shards` below (1, 2, or more than the checkpoint above has) and
# run the cell; it loads a checkpoint of the same weights' size with that many shards with `manual_shards`, on
# the panel's plot. Expected: fewer shards make fewer, taller steps of the staircase; its top, the peak, stays
# at about one copy of the model plus what the forward pass adds, whatever the shard count: every shard stays,
# as parameters.

# %%
experiment_shards = 1
experiment = teach.run_live(panel.plot, lab.demo_checkpoint(shards=experiment_shards), "manual_shards",
                            note=f"{experiment_shards} shard(s)")
assert experiment.ok, experiment.error
teach.say(
    f"With {experiment_shards} shard(s), RSS above baseline after each read: "
    + ", ".join(teach.fmt(v) for _, v in staircase(experiment))
    + f"; peak {teach.fmt(experiment.peak_above_baseline_bytes)}, {experiment.peak_ratio:.2f}× the checkpoint. "
    f"The run above, with {len(info.shards)} shard(s): peak {st.peak_ratio:.2f}×."
)

# %% [markdown]
# ## Exercise 2: write the loader
#
# Fill in `my_loader` so that it returns the loaded model: an empty model, then every shard assigned. The check
# runs it as a strategy is run: its source goes to a fresh measured process, so nothing this kernel did before
# counts. It is right when it reads each shard itself, once (one `shard_read` event per shard), assigns each
# before reading the next, grows its process by at most one copy plus the largest shard, and gives the logits
# of the `manual_shards` run. Define it with `def` in this cell; the modules it uses (`lab`) go with it.

# %%
my_loader = ...  # replace with: def my_loader(folder): ... return model


teach.check_manual_loader(my_loader, folder, reference=st)

# %% [markdown]
# ## Summary
#
# - The index maps tensors to files; a loader can read one shard at a time.
# - Empty model + `load_state_dict(..., assign=True)` per shard: one copy at most, drawn as a staircase.
# - Writing shards out and reading them back costs disk and time and cannot go below one copy.
# - Lesson 05 puts all four strategies side by side on a simulated small machine.
