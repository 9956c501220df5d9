# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 03 · `offload_folder`: when even one copy does not fit
#
# *Step through a lesson with **Shift+Enter**, one cell at a time, to watch each load as it happens. Under
# Run All, JupyterLab shows the notebook's last cell while the cells above it run: a panel or board brings its
# plot back into view when its load starts; to watch any other plot, scroll up to it.*
#
# **What you will learn**
#
# - what `device_map="auto"`, `max_memory` and `offload_folder` do in `from_pretrained`;
# - what actually lands in the offload folder: with a safetensors checkpoint, with a pickle (`.bin`)
#   checkpoint, and with accelerate's `load_checkpoint_and_dispatch`, all three measured;
# - the price: every forward pass reads the offloaded weights back, from the page cache or from the disk,
#   measured in bytes read from disk (during the load and during the forwards) and in time;
# - how peak RAM moves as `max_memory` grows (a sweep).

# %%
import importlib.util

if importlib.util.find_spec("widgetlib") is None:  # a Jupyter without Offload Lab: install the clone it is in
    get_ipython().run_line_magic("pip", "install --quiet ..")  # noqa: F821 (Offload Lab is not on PyPI)

import shutil
import tempfile
from pathlib import Path

import torch
from IPython.display import display

import widgetlib as lab
from widgetlib import teach

versions = teach.print_versions()

# %% [markdown]
# ## The idea
#
# With `device_map="auto"`, loading starts with a *plan*: transformers walks the empty model (lesson 02) layer
# by layer and places each one on the GPU, in RAM, or on `"disk"`, filling each place up to its `max_memory`.
# The planner is transformers' own copy of accelerate's (`infer_auto_device_map` in
# `transformers/integrations/accelerate.py`), and it counts buffers as well as parameters.
# Layers planned for disk are not kept in RAM: a hook loads their weights just before the layer runs in the
# forward pass, and drops them after. `offload_folder` is where weights that must go to disk are written.
#
# "Must" is the word to watch. A safetensors file can be read one tensor at a time, in place: transformers'
# offload index can point straight into the checkpoint's own files. A pickle (`.bin`) file cannot, so its
# offloaded weights are written out. accelerate's own `load_checkpoint_and_dispatch` writes every offloaded
# weight as a `.dat` file. Three runs, one plot, and then a look inside each folder.

# %%
folder = lab.demo_checkpoint()
bin_folder = lab.demo_checkpoint(format="bin")
info = lab.inspect_checkpoint(folder)
max_memory = lab.default_max_memory_bytes(info)
workdir = Path(tempfile.mkdtemp(prefix="offload-lab-03-"))
teach.say(
    f"Checkpoint {teach.fmt(info.total_bytes)}; `max_memory` for the weights in RAM: **{teach.fmt(max_memory)}**. "
    f"Offload folders go under `{workdir}`."
)

# %%
panel = lab.StrategyPanel(folder, strategy="offload_folder", max_memory=max_memory,
                      offload_folder=workdir / "safetensors")
display(panel)

# %%
runs = {"safetensors + from_pretrained": panel.run()}
runs[".bin + from_pretrained"] = teach.run_live(
    panel.plot, bin_folder, "offload_folder", max_memory=max_memory, offload_folder=workdir / "bin",
    note=".bin checkpoint")
runs["safetensors + accelerate"] = teach.run_live(
    panel.plot, folder, "offload_folder", max_memory=max_memory, offload_folder=workdir / "accelerate",
    offload_via="accelerate", note="accelerate load_checkpoint_and_dispatch")
assert all(r is not None and r.ok for r in runs.values()), {k: r and r.error for k, r in runs.items()}

# %% [markdown]
# ### What you just saw

# %%
teach.say(teach.reports_table(runs.values(), labels=runs))
for name, r in runs.items():
    places = ", ".join(f"{place} {teach.fmt(r.bytes_on(place))}" for place in r.device_map)
    teach.say(f"**{name}**: weights placed: {places}. Offload folder {teach.folder_listing(r.offload_folder, 3)}")

# %%
st, pickle_run, acc = runs.values()
teach.say(
    f"- safetensors with `from_pretrained`: {teach.fmt(st.bytes_on('disk'))} of "
    f"weights planned for disk, **{st.offload_folder_files} file(s)** written: they are read in place from the "
    "checkpoint.\n"
    f"- `.bin` with `from_pretrained`: **{pickle_run.offload_folder_files} file(s), "
    f"{teach.fmt(pickle_run.offload_folder_bytes)}** written.\n"
    f"- accelerate's `load_checkpoint_and_dispatch`: **{acc.offload_folder_files} file(s), "
    f"{teach.fmt(acc.offload_folder_bytes)}** written, one `.dat` per weight plus an index.\n"
    f"- Peaks above baseline: {teach.fmt(st.peak_above_baseline_bytes)}, "
    f"{teach.fmt(pickle_run.peak_above_baseline_bytes)} and {teach.fmt(acc.peak_above_baseline_bytes)}, for a "
    f"{teach.fmt(info.total_bytes)} checkpoint."
)
for r in runs.values():
    assert r.bytes_on("disk") > 0, "max_memory below the model must offload something"
    # Normal loading holds two copies; here the peak is one copy at most, plus the pages mapped from the files
    # and the forward's working memory.
    assert r.peak_ratio < 2 or not teach.peak_is_exact(r), "offloading never holds the two copies normal loading does"
assert st.offload_folder_files == 0, "safetensors weights are read in place: nothing written"
assert pickle_run.offload_folder_files > 0 and acc.offload_folder_files > 0, "these two write the folder"
assert any(p.suffix == ".dat" for p in (workdir / "accelerate").iterdir()), "accelerate writes .dat files"

# %%
# Only where CUDA is available (this cell shows nothing elsewhere): the plan may use the GPU first. With
# gpu_max_memory, device_map="auto" fills cuda:0, then RAM up to max_memory, then disk; the plot gains the
# GPU's memory line (torch.cuda.memory_allocated in the loading process).
if torch.cuda.is_available():
    gpu_run = teach.run_live(panel.plot, folder, "offload_folder", max_memory=max_memory,
                             gpu_max_memory=info.total_bytes // 2, offload_folder=workdir / "gpu",
                             note="cuda:0, then RAM, then disk")
    assert gpu_run.ok, gpu_run.error
    on_gpu = gpu_run.bytes_on("cuda:0")
    teach.say(
        f"**With CUDA ({torch.cuda.get_device_name(0)})**: weights placed "
        + ", ".join(f"{place} {teach.fmt(gpu_run.bytes_on(place))}" for place in gpu_run.device_map)
        + f". The GPU's memory peaked at {teach.fmt(gpu_run.gpu_peak_bytes)}, which holds the "
        f"{teach.fmt(on_gpu)} placed on `cuda:0` (and the forward pass's activations there). RAM peaked at "
        f"{teach.fmt(gpu_run.peak_above_baseline_bytes)} above baseline: that includes CUDA's own libraries and "
        "context, which the loading process sets up during this load."
    )
    assert on_gpu > 0 and (gpu_run.gpu_peak_bytes or 0) >= 0.9 * on_gpu, "the layers on cuda:0 are in GPU memory"

# %% [markdown]
# ## The sweep: how much RAM, how much time
#
# The **CompareBoard** runs the `offload_folder` strategy at several `max_memory` values, from the largest
# tensor up to the size of all the weights, and plots the peak above baseline (as the table under it reads it)
# and the forward time against `max_memory`.
# (Even less works too: with too little room for any layer, every layer goes to disk.)

# %%
board = lab.CompareBoard(folder)
display(board)

# %%
sweep_values = lab.default_sweep_values(info.largest_tensor_bytes, info.total_bytes, points=3)
sweep = board.sweep(sweep_values)
assert len(sweep) == len(sweep_values) and all(r.ok for r in sweep), [r.error for r in sweep]

# %% [markdown]
# ### What you just saw
#
# Each run made several forward passes after loading: **first forward** is the first one, which also pays
# one-time costs (touching pages for the first time, the allocator's warm-up); **steady forward** is the median
# of the ones after it, the price of where the weights live on *every* forward. These runs found the
# checkpoint in the page cache (the runs above read it), so an offloaded weight came back from RAM, not disk.

# %%
least, most = sweep[0], sweep[-1]
teach.say(teach.reports_table(sweep, columns=["max_memory_bytes", "disk_bytes", "peak_above_baseline_bytes",
                                              "forward_s", "steady_forward_s"], label_header=None))
teach.say(teach.sweep_peaks(least, most))
assert least.bytes_on("disk") > most.bytes_on("disk")
if teach.peak_is_exact(least) and teach.peak_is_exact(most):
    assert least.peak_above_baseline_bytes < most.peak_above_baseline_bytes, "less max_memory, lower peak"

# %% [markdown]
# ## The price of offloading: what is read from disk, and when
#
# The same `max_memory` (the sweep's smallest, the most on disk) three times, each pair differing in one thing:
# **cold** (the checkpoint's pages dropped from the page cache before the load), **warm** (right after it, the
# pages still cached), and **dropped** (a warm load, then the pages dropped again after the load and before the
# first forward: `cold_forward=True`). `disk_read_bytes` is what the loading process read from the disk, from
# the load start to the last forward (Linux counts it per process in `/proc/<pid>/io`, `read_bytes`);
# `disk_read_forward_bytes` is the part read by the forwards. A *major page fault* is the kernel reading a page
# from disk for the process through a memory mapping.

# %%
price_max_memory = least.max_memory_bytes
cold = teach.run_live(board.plot, folder, "offload_folder", max_memory=price_max_memory, cold_cache=True,
                      note="cold cache")
warm = teach.run_live(board.plot, folder, "offload_folder", max_memory=price_max_memory, note="warm cache")
dropped = teach.run_live(board.plot, folder, "offload_folder", max_memory=price_max_memory, cold_forward=True,
                         note="dropped before the forward")
assert cold.ok and warm.ok and dropped.ok, (cold.error, warm.error, dropped.error)
teach.say(teach.reports_table([cold, warm, dropped], ["cold", "warm", "dropped"], label_header="cache",
                              columns=["disk_read_bytes", "disk_read_forward_bytes", "major_faults", "forward_s",
                                       "steady_forward_s"]))
assert cold.device_map == warm.device_map == dropped.device_map, "one plan: only the cache differs"
assert "cold_cache" in cold.details and "cold_cache" not in warm.details and "cold_forward" in dropped.details
teach.say(teach.disk_price(cold, warm, dropped))

# %% [markdown]
# ## Experiment
#
# Change **`max_memory`**: set `experiment_max_memory` below (in bytes; it starts halfway between the sweep's
# smallest and largest) and run the cell; it repeats the "dropped" run with that `max_memory`, on the board's
# plot. Expected: the plan's bytes on disk fall between those of the sweep's two ends, in steps of one layer
# (the plan places whole layers). Then compare what the forwards read from disk with the "dropped" run above,
# which had the most on disk: the pages of the weights planned for RAM were dropped too, since with
# safetensors they are pages of the same mapped files.

# %%
experiment_max_memory = (least.max_memory_bytes + most.max_memory_bytes) // 2
experiment = teach.run_live(board.plot, folder, "offload_folder", max_memory=experiment_max_memory,
                            cold_forward=True, note=f"dropped, max_memory {teach.fmt(experiment_max_memory)}")
assert experiment.ok, experiment.error
teach.say(teach.reports_table([dropped, experiment], ["dropped, above", "dropped, experiment"], label_header="run",
                              columns=["max_memory_bytes", "disk_bytes", "disk_read_forward_bytes", "major_faults",
                                       "steady_forward_s"]))
between = most.bytes_on("disk") <= experiment.bytes_on("disk") <= least.bytes_on("disk")
teach.say(f"On disk: {teach.fmt(experiment.bytes_on('disk'))}, "
          + ("between" if between else "outside")
          + f" the sweep's {teach.fmt(most.bytes_on('disk'))} and {teach.fmt(least.bytes_on('disk'))}.")
if least.max_memory_bytes <= experiment_max_memory <= most.max_memory_bytes:
    assert between, "more max_memory never puts more on disk"

# %% [markdown]
# ## Exercise 1
#
# Choose a `max_memory` (in bytes) that puts roughly half of the weights on disk. The check plans the device
# map for your value on an empty model with the planner `from_pretrained` itself calls, without loading
# anything; `teach.disk_share(folder, max_memory)` shows you that plan (bytes per place) for any value. Careful:
# while it fills RAM, the planner keeps room for the largest layer still to place, so that an offloaded layer
# can be brought in (`transformers/integrations/accelerate.py`, `infer_auto_device_map`, "Reduce max size
# available by the largest layer"): half of the weights' bytes puts more than half of them on disk.

# %%
my_max_memory = ...
teach.check_max_memory(my_max_memory, folder)

# %% [markdown]
# ## Exercise 2
#
# For each of the three runs, did it write files into its offload folder? `True` or `False`.

# %%
my_answer = {
    "safetensors + from_pretrained": ...,
    ".bin + from_pretrained": ...,
    "safetensors + accelerate": ...,
}
teach.check_offload_writes(my_answer, runs)

# %% [markdown]
# ## Is your own call right?
#
# `offload_folder` does something only in some calls. `lab.explain_call(line, checkpoint=...)` reads each
# argument of a `from_pretrained(...)` line against the installed transformers and cites the line that decides
# it; lesson 06 measures the notes' own call with it, and invites yours. This lesson's call, then the same call
# without its `device_map`:

# %%
lesson_call = ('AutoModelForCausalLM.from_pretrained(folder, device_map="auto", max_memory={"cpu": '
               f'{max_memory}}}, offload_folder=workdir)')
for line in (lesson_call, lesson_call.replace('device_map="auto", ', "")):
    reading = lab.explain_call(line, checkpoint=folder).reading
    teach.say(f"`{reading.call.source}`\n\n" + "\n".join(
        f"- `{v.written}`: *{v.label}* (`{v.citations[-1]}`)" for v in reading.verdicts if v.position is None))

# %%
# Safe only now: every model that read from these offload folders lived in a run's own process, and all have
# exited. A live model needs its offload folder as long as it runs (lesson 06 deletes one too early).
shutil.rmtree(workdir, ignore_errors=True)

# %% [markdown]
# ## Summary
#
# - `device_map="auto"` + `max_memory` plans where each layer lives; weights planned for `"disk"` are loaded
#   by a hook at forward time.
# - `offload_folder` is a valid `from_pretrained` argument; what lands in it depends on the checkpoint format
#   and on who loads: nothing for safetensors in `from_pretrained`, files for `.bin` and for accelerate's
#   `load_checkpoint_and_dispatch`.
# - Less `max_memory` means a lower peak and more weights brought back on every forward: from the page cache
#   while it holds the files, from the disk when it does not (the bytes read by the forwards after the pages
#   were dropped). Loading reads every weight once, the offloaded ones too.
# - Lesson 04 loads the shards by hand, one at a time.
