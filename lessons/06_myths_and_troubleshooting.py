# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 06 · Myths and troubleshooting
#
# This lab grew from a learner's notes written after their machine ran out of RAM loading a model. Several of
# their claims were wrong for today's libraries, some were never right, and some are half-truths. This lesson
# checks each claim with a run on your machine, then lists what to look at when a load fails.
#
# *Step through a lesson with **Shift+Enter**, one cell at a time, to watch each load as it happens. Under
# Run All, JupyterLab shows the notebook's last cell while the cells above it run: a panel or board brings its
# plot back into view when its load starts; to watch any other plot, scroll up to it.*
#
# **What you will learn**
#
# - what the installed transformers does with every argument of the notes' own `from_pretrained(...)` call,
#   read from its source and measured, and how to ask the same of your own line (`lab.explain_call`);
# - whether `offload_folder` is a valid `from_pretrained` argument (a run that uses it), what accelerate has to do
#   with it, and when the offload folder may be deleted (a run that deletes it too early);
# - the two offload errors learners paste into issue trackers, searched for in the installed libraries and caused;
# - whether `low_cpu_mem_usage=True` is what saves memory (the source and two runs);
# - what "contiguous RAM" and "fragmentation" mean with virtual memory, measured;
# - what Windows' error 1455 ("the paging file is too small") is really about, and why transformers reads
#   files differently on Windows, quoted from the installed source;
# - why RSS can look small right after a load (mapped files), and why a `.bin` file must be loaded with
#   `weights_only`.

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
folder = lab.demo_checkpoint()
info = lab.inspect_checkpoint(folder)
workdir = Path(tempfile.mkdtemp(prefix="offload-lab-06-"))
evidence = {}  # claim -> what this notebook's runs say about it (True = the claim holds)
reasons = {}  # claim -> what in the run decided it (the check tells it after a second wrong answer)

# %% [markdown]
# ## The notes' own call, checked
#
# The notes loaded their model with `low_cpu_mem_usage=True` ("already doing this") and an `offload_folder` in a
# temporary folder, and then decided the folder was "NOT a valid parameter". `lab.explain_call` reads every
# argument of a call against the transformers installed here (its source files, not a table typed in), cites the
# file and line that decides each verdict, and with `measure=True` loads the call as written and without each
# argument found to do nothing, each in its own measured process, on this lesson's checkpoint. The model name
# and the folder are stand-ins: the checker loads your checkpoint, and gives the call a folder of its own.

# %%
notes_call = ("model = AutoModelForCausalLM.from_pretrained(model_name, low_cpu_mem_usage=True, "
              "offload_folder=temp_dir)")
checked = lab.explain_call(notes_call, checkpoint=folder, measure=True)
display(checked)
assert all(run.report.ok for run in checked.runs), [run.report.error for run in checked.runs]

# %% [markdown]
# ## Claim 1: "`offload_folder` is NOT a valid parameter for `from_pretrained()`"
#
# The notes said it belongs to accelerate, not transformers. The checker above found `from_pretrained` taking it
# from the keyword arguments; here is that line of the installed source:

# %%
offload_verdict = checked.reading.verdict("offload_folder")
display(teach.quote_lines(offload_verdict.citations[0].path, offload_verdict.citations[0].line, before=0, after=0))

# %% [markdown]
# Then a run that passes it with a device map: `from_pretrained(folder, device_map="auto", max_memory=...,
# offload_folder=...)`.

# %%
panel = lab.StrategyPanel(folder, strategy="offload_folder", offload_folder=workdir / "offload")
display(panel)

# %%
offload = panel.run()
finished = offload is not None and offload.ok
disk_bytes = offload.bytes_on("disk") if finished else 0
# The claim holds only if from_pretrained refused the argument: a finished run that offloaded refutes it.
evidence["offload_folder is not a valid from_pretrained argument"] = not (finished and disk_bytes > 0)
reasons["offload_folder is not a valid from_pretrained argument"] = (
    f"a from_pretrained run with it and a device_map put {teach.fmt(disk_bytes)} on disk" if finished else
    "the run with it did not finish")
teach.say(
    (f"The run finished with {teach.fmt(disk_bytes)} of weights offloaded to disk. " if finished else
     f"The run did not finish ({offload.outcome if offload else 'no report'}): "
     f"{offload.error if offload else panel.message}. ")
    + "`offload_folder` is a `from_pretrained` argument, but it takes effect only together with a `device_map` "
    "that sends something to disk (lesson 03 shows what lands in the folder)."
)

# %% [markdown]
# The notes' own call passed `offload_folder=` **without** `device_map`. The checker's verdict on it, and what
# its measured run of the call as written found:

# %%
as_written = checked.run("as written")
places = ", ".join(f"{place} {teach.fmt(entry['bytes'])}" for place, entry in as_written.report.device_map.items())
teach.say(f"*{offload_verdict.label}*: {offload_verdict.says}\n\n"
          f"Measured, as written: offload folder made **{as_written.report.details['offload_folder_made']}**, "
          f"{teach.fmt(as_written.report.offload_folder_bytes)} written to it, weights placed {places}, "
          f"**{len(as_written.warnings)}** warning(s)" + (f" ({'; '.join(as_written.warnings)})"
                                                          if as_written.warnings else "") + ".")
assert offload_verdict.kind == "no_effect", offload_verdict.says
assert as_written.report.details["offload_folder_made"] is False and "disk" not in as_written.report.device_map

# %% [markdown]
# The notes were right that their code offloaded nothing, and wrong about why: the argument is valid, and it
# takes effect only behind the tests the checker quoted, which need a device map.

# %% [markdown]
# ### Half true: "`offload_folder` is used with accelerate"
#
# The half that is true: a `device_map` needs accelerate. transformers checks for it before it places anything,
# and the hooks that read offloaded weights back during a forward pass are accelerate's (`dispatch_model`). Here
# is the check, from the installed source, and a run in a child process where `import accelerate` finds nothing:

# %%
# transformers/integrations/accelerate.py ~135-141 (check_and_set_device_map): a device_map without accelerate
# raises; ~401-430 (accelerate_dispatch) hands the map to accelerate's dispatch_model, whose hooks
# (accelerate/big_modeling.py ~367-402) load disk weights during the forward pass.
display(teach.find_source("transformers", "integrations/accelerate.py", [r"if not is_accelerate_available\(\)"],
                          what="refuses a device_map without accelerate", before=1, after=4))
no_accelerate = teach.without_accelerate_probe(folder)
teach.say(f"Without accelerate, `from_pretrained(folder, device_map=\"cpu\")` raised **{no_accelerate['type']}**: "
          f"{no_accelerate['first_line']}" if no_accelerate else
          "Without accelerate, `from_pretrained(folder, device_map=\"cpu\")` loaded: this transformers does not "
          "ask for it.")
assert no_accelerate is not None, "the installed transformers no longer needs accelerate for a device_map"
evidence["offload_folder works only with accelerate installed"] = no_accelerate is not None
reasons["offload_folder works only with accelerate installed"] = (
    "it does something only with a device_map, and without accelerate a device_map raised "
    f"{no_accelerate['type']}" if no_accelerate else "without accelerate, a device_map loaded")

# %% [markdown]
# The half that is false: `offload_folder` is an argument of `from_pretrained` (claim 1's run used it), not only
# of accelerate's own functions.
#
# ## "Clean up after loading": when may the offload folder go?
#
# The notes advised deleting the offload folder once the model has loaded. A run, in a child process, on a tiny
# checkpoint of its own (so the outcome does not depend on this lesson's size): the same model as `.bin` and as
# safetensors, loaded with the second half of its layers on `"disk"` and an `offload_folder`; one forward pass;
# the folder deleted while the model is still alive; a second forward pass.

# %%
cleanup = teach.offload_folder_probe(workdir / "cleanup")


def outcome(error):  # what the forward pass after the delete did, from the run
    return "went through" if error is None else f"raised **{error['type']}**: `{error['first_line']}`"


binary, safe = cleanup["bin"], cleanup["safetensors"]
teach.say(
    f"Offloaded to disk: {', '.join(cleanup['disk_modules'])}.\n\n"
    f"- `.bin`: {binary['files']} files ({teach.fmt(binary['bytes'])}) written to the offload folder, the first "
    f"`{binary['first_file']}`; after the delete, the next forward pass {outcome(binary['forward_after_delete'])}\n"
    f"- safetensors: {safe['files']} files ({teach.fmt(safe['bytes'])}) written to the offload folder; after the "
    f"delete, the next forward pass {outcome(safe['forward_after_delete'])}"
)
assert binary["files"] > 0 and binary["forward_after_delete"] is not None, binary
# The notes' advice holds only if every forward after the delete went through.
evidence["the offload folder can be deleted once the model has loaded"] = all(
    run["forward_after_delete"] is None for run in (binary, safe))
reasons["the offload folder can be deleted once the model has loaded"] = (
    "after the folder was deleted, the .bin model's next forward pass "
    + ("went through" if binary["forward_after_delete"] is None else
       f"raised {binary['forward_after_delete']['type']}"))

# %%
# accelerate/utils/offload.py ~170-183 (OffloadedWeightsLoader.__getitem__): each offloaded weight's file is
# opened (safe_open) when a forward pass needs it, not at load time, so the folder must exist as long as the
# model runs. transformers/integrations/accelerate.py ~479-514 (accelerate_disk_offload): for a safetensors
# checkpoint the disk offload index points at the checkpoint's own files; ~521-524: any other format (a .bin)
# has every offloaded weight re-saved into offload_folder (core_model_loading.py ~1631, offload_weight).
display(teach.find_source("transformers", "integrations/accelerate.py", [r"Prepare the index using existing"],
                          what="points the disk offload index at a safetensors checkpoint's own files",
                          before=0, after=6))
teach.say(
    "The offload folder is not a cache of the load: it is where the model's disk weights *live*. Each forward "
    "pass opens their files again, so the folder may go only **after the model is deleted** (`del model`, and "
    "nothing else holding it), never right after loading. "
    + ("With safetensors the installed transformers writes nothing there: the weights are read in place from "
       "the checkpoint's own files (the index above), so it is the *checkpoint* folder that must outlive the "
       "model, and deleting the empty offload folder changes nothing."
       if safe["files"] == 0 and safe["forward_after_delete"] is None else
       "Here the safetensors load wrote to the folder too, so the same rule holds for it.")
)

# %% [markdown]
# ## The two errors the issue trackers are full of
#
# Learners paste two messages: *"The current device_map had weights offloaded to the disk. Please provide an
# offload_folder"* and *"You are trying to offload the whole model to the disk"*. Each searched for in the
# installed transformers and accelerate (ignoring the backticks around names), and, where one exists, caused by
# a run: claim the `.bin` model's disk layers without an `offload_folder`, and put the whole model on disk.

# %%
tracker_messages = {
    "Please provide an offload_folder": ("had weights offloaded to the disk", "Please provide an offload_folder"),
    "offload the whole model to the disk": ("You are trying to offload the whole model",
                                            "offload the whole model to the disk"),
}
found = {name: teach.find_phrase(parts, limit=1) for name, parts in tracker_messages.items()}
for quotes in found.values():
    for quote in quotes:
        display(quote)
lines = []
for name, quotes in found.items():
    where = (f"in `{Path(quotes[0].file).parent.name}/{Path(quotes[0].file).name}`, line {quotes[0].line}"
             if quotes else
             f"**nowhere** in transformers {versions['transformers']} or accelerate {versions['accelerate']}")
    lines.append(f"- *{name}*: {where}.")
missing = cleanup["bin_without_folder"]
lines.append("- A `.bin` load with disk layers and no `offload_folder` "
             + (f"raised **{missing['type']}**: {missing['first_line']}" if missing else "loaded."))
whole = cleanup["all_on_disk"]
lines.append('- A `.bin` load with `device_map={"": "disk"}` and an `offload_folder`, then a forward pass, '
             + (f"raised **{whole['type']}**: {whole['first_line']}" if whole else "went through."))
gone = not found["offload the whole model to the disk"]
lines.append(
    "\nThe first message exists, reworded: disk weights that must be written somewhere (a `.bin`, or a model "
    "that converts weights while loading) and no folder to write them to. The fix is an `offload_folder`, or a "
    "safetensors checkpoint, which needs none."
    + (f" The second message is not in the installed versions (where it comes from was not checked here), and this "
       f"transformers {'puts a whole model on disk when asked' if whole is None else 'refuses it as shown'}."
       if gone else " The second message is in the installed versions too: read the quote above for its cause.")
)
teach.say("\n".join(lines))
assert found["Please provide an offload_folder"] and missing is not None, (found, missing)

# %% [markdown]
# ## Claim 2: "Rely on `low_cpu_mem_usage=True`"
#
# Lesson 02 in one cell, from the checker's runs above: its verdict on the flag, and the notes' call as written
# against the same call without the flag (one thing changed), drawn on one plot.

# %%
flag_verdict = checked.reading.verdict("low_cpu_mem_usage")
honoured = {"ignored": False, "used": True}.get(flag_verdict.kind)  # None: the source did not say
teach.say(f"*{flag_verdict.label}*: {flag_verdict.says} (`{flag_verdict.citations[0]}`)")
plot = lab.MemoryPlot(title="the notes' call with and without low_cpu_mem_usage")
display(plot.figure)
on, off = checked.run("as written").report, checked.run("without low_cpu_mem_usage").report
plot.add_report(on, note="as written (flag on)")
plot.add_report(off, note="without low_cpu_mem_usage")

# %%
a, b = on.peak_above_baseline_bytes, off.peak_above_baseline_bytes
exact = teach.peak_is_exact(on) and teach.peak_is_exact(off)
if exact:
    lowers = b - a > 0.15 * b
    teach.say(
        f"Peak above baseline with the flag {teach.fmt(a)}, without {teach.fmt(b)}: the flag "
        f"{'lowers' if lowers else 'does not lower'} the peak here. Meta-device loading "
        f"{'is' if honoured is False else 'may not be'} always on; nothing to rely on."
    )
    if honoured is False:
        assert not lowers, "an ignored flag cannot lower the peak"
else:  # the portable probe's peaks may include start-up: let the source decide
    lowers = bool(honoured)
    teach.say(f"Peaks above baseline: {teach.fmt(a)} with the flag, {teach.fmt(b)} without; on this OS they may "
              "include each process's start-up, so the source above decides: the flag "
              f"{'is honoured' if lowers else 'is ignored'} here.")
evidence["passing low_cpu_mem_usage=True lowers the peak"] = lowers
reasons["passing low_cpu_mem_usage=True lowers the peak"] = (
    f"peak above baseline {teach.fmt(a)} with the flag, {teach.fmt(b)} without")

# %% [markdown]
# ## Claim 3: "The real issue is memory fragmentation / not enough *contiguous* RAM"
#
# Every process sees its own **virtual** address space. A large tensor needs a contiguous range of *virtual*
# addresses; the operating system backs each page of that range with any free physical page, wherever it is.
# So physical RAM never has to be contiguous, and a fresh process has a nearly empty address space (on a
# 64-bit system, far larger than any RAM).
#
# Fragmentation does exist *inside* a process: freed small blocks leave holes in the heap that the allocator
# keeps (lesson 00). Does a heap full of holes stop a big contiguous allocation? Measured in a child process:
# fill the heap with small blocks, free most of them (holes everywhere), then ask for one big block.

# %%
alloc_bytes = min(max(info.total_bytes, 50_000_000), 200_000_000)
alloc = teach.allocator_probe(alloc_bytes)
holes = alloc["small_allocated"].rss_bytes - alloc["big_deleted"].rss_bytes
big = alloc["big_after_holes"].rss_bytes - alloc["gc_collected"].rss_bytes
evidence["memory fragmentation stops a large allocation"] = "big_after_holes" not in alloc
teach.say(
    f"The heap held {teach.fmt(holes)} of small blocks, most of them freed. A contiguous block of "
    f"{teach.fmt(alloc_bytes // 2)} was then allocated at once, and RSS grew by {teach.fmt(big)}: the block got "
    "fresh pages of its own instead of the holes. Fragmentation wastes memory (the holes stay resident). That "
    f"the block was granted proves little by itself: {teach.fmt(alloc_bytes // 2)} is granted on any machine "
    f"with {teach.fmt(teach.commit_figures()['available'])} available, holes or not. The next run asks for more "
    "than that. And when a process exits, the OS takes back all of its memory, holes included."
)
assert big >= 0.8 * (alloc_bytes // 2), "the big block was allocated and backed by fresh pages"

# %% [markdown]
# ### A block larger than the free RAM
#
# What decides whether a large allocation is granted? Two requests in this kernel, each for one contiguous block
# of address space, none of it touched: the first larger than all the RAM available right now (but less than RAM
# and swap together), the second twice RAM and swap together. If a block needed that much contiguous free RAM,
# or that much free RAM at all, the first would be refused.

# %%
figures = teach.commit_figures()
ram_and_swap = figures["total"] + figures["swap_total"]
asks = {"more than the RAM available": figures["available"] + (ram_and_swap - figures["available"]) // 2,
        "twice RAM and swap": 2 * ram_and_swap}
reserved = {name: teach.reserve_probe(n_bytes) for name, n_bytes in asks.items()}
teach.say("\n".join(
    f"- {name}, **{teach.fmt(asks[name])}** (available: {teach.fmt(figures['available'])}, RAM and swap: "
    f"{teach.fmt(ram_and_swap)}): "
    + (f"granted at once; RSS grew by {teach.fmt(r['rss_growth'])} while it was held." if r["granted"] else
       f"refused, `{r['error']}`.")
    for name, r in reserved.items()))
first, wild = reserved["more than the RAM available"], reserved["twice RAM and swap"]
reasons["memory fragmentation stops a large allocation"] = (
    f"a {teach.fmt(alloc_bytes // 2)} block was allocated in a heap full of holes"
    + (", and one larger than the free RAM was granted" if first["granted"] else ""))
teach.say(
    ("A block larger than the free RAM was granted: a block is a range of *addresses*; physical pages are found "
     "one by one, anywhere, when it is touched. " if first["granted"] else
     "Here even the first block was refused: this OS charges every block against a limit when it is made (the "
     "commit limit below), whatever is contiguous. ")
    + ("The wild one was refused when asked: what the OS judged was its size against what the machine could ever "
       "give, not where free RAM lies." if not wild["granted"] else
       f"Even the wild one was granted (overcommit mode {figures.get('overcommit_mode')}): this OS refuses "
       "nothing when asked, and ends a process later if the touched pages do not fit.")
)

# %% [markdown]
# ## Windows' error 1455: "The paging file is too small for this operation to complete"
#
# Windows *charges* every private allocation against a **commit limit** (RAM plus the paging file) when it is
# committed, touched or not (memory only reserved is not charged, but an allocation the program can use is
# committed). When the sum of all charges would exceed the limit, the allocation fails with error 1455, even
# if plenty of RAM is free at that moment. Linux overcommits: it hands out pages when they are touched. So
# the same load can fail on Windows with RAM to spare, and the fix is a larger paging file or a lower peak,
# not a reboot.
#
# This machine's figures. On Windows, the commit charge is the system's total page file minus its available
# page file (`GlobalMemoryStatusEx`, which names the commit limit "page file"). On Linux, `/proc/meminfo`
# prints a commit limit, but with the default overcommit mode (`vm.overcommit_memory` = 0, shown below) the
# kernel does not enforce it. It refuses only an obvious over-allocation, one request larger than all of RAM and
# swap together ("the kernel compares the userspace memory request size against total memory plus swap and
# rejects obvious overcommits", the kernel's `Documentation/admin-guide/sysctl/vm.rst`), like the wild request
# above. A request below that is granted whatever is free; if the pages touched later do not fit, no allocation
# fails: the OOM killer ends a process. Mode 2 enforces the commit limit, as Windows does; mode 1 never refuses.

# %%
figures = teach.commit_figures()
teach.say("\n".join(f"- {name}: {value if name == 'overcommit_mode' else teach.fmt(value)}"
                    if value is not None else f"- {name}: not reported here" for name, value in figures.items()))

# %% [markdown]
# A memory-mapped file with copy-on-write pages is charged for its whole size on Windows too. That is why the
# installed transformers reads safetensors files with `pread` instead of `mmap` there. From the source, not
# from memory:

# %%
pread_quotes = teach.source_quote("transformers", "modeling_utils.py", r"Use pread on", before=0, after=8, limit=1)
for quote in pread_quotes:
    display(quote)
assert pread_quotes and "win32" in pread_quotes[0].text, "the Windows pread path is where it was"

# %% [markdown]
# ## Half-truth: "RSS shows what the model takes"
#
# RSS counts file-backed pages too, and a mapped checkpoint's pages arrive only when read. From the measured run
# of the notes' call as written, above:

# %%
at_load = teach.growth(on, "ready", "loaded")
at_peak = teach.growth(on, "ready")
teach.say(
    f"When `from_pretrained` returned, the process had grown by {teach.fmt(at_load['rss'])} "
    f"({teach.fmt(at_load['anon'])} anonymous, {teach.fmt(at_load['file'])} file-backed); by the end of the "
    f"first forward pass by {teach.fmt(at_peak['rss'])} ({teach.fmt(at_peak['anon'])} anonymous, "
    f"{teach.fmt(at_peak['file'])} file-backed), for a {teach.fmt(info.total_bytes)} model. Read RSS with its "
    "split, and after the first forward pass."
    + (" Even then it can stay below the model's size: a forward pass of a few tokens reads only their rows of "
       "the embedding table, and the pages of the other rows are never read from the mapped file (lesson 00)."
       if at_peak["rss"] is not None and at_peak["rss"] < info.total_bytes else "")
)

# %% [markdown]
# ## `.bin` files are pickles: `weights_only`
#
# A `.bin` checkpoint is a Python pickle, and unpickling can call any function the file names. Below, a file
# holds one real tensor and an instruction to create a marker file (harmless, but it could be anything).
# Offload Lab's `read_shard` loads with `torch.load(weights_only=True)`, which unpickles tensors and nothing else.

# %%
hostile, marker = teach.hostile_pickle(workdir / "hostile")
try:
    lab.read_shard(hostile)
    refused = None
except lab.CheckpointError as exc:
    refused = exc
teach.say(f"`read_shard` refused it (kind `{refused.kind}`): {refused.message} Marker created: {marker.exists()}."
          if refused else "read_shard loaded it!")
assert refused is not None and refused.kind == "unsafe_pickle" and not marker.exists()

torch.load(hostile, weights_only=False)  # what an unsafe loader does: the file's instruction runs
teach.say(f"With `weights_only=False` the marker file exists afterwards: **{marker.exists()}**.")
assert marker.exists()

# %% [markdown]
# ## Experiment
#
# Change the **dtype** of claim 1's run: set `experiment_dtype` below (`"bfloat16"`, `"float16"`, or the
# checkpoint's own `"float32"`) and run the cell; it repeats claim 1's `offload_folder` run with the same
# `max_memory`, on the panel's plot. Expected: in a two-byte dtype each weight takes half the bytes, so the
# same `max_memory` holds more of them in RAM, and fewer go to disk. The peak need not fall: converting reads the
# float32 file pages as well as making the new copy (lesson 00).

# %%
experiment_dtype = "bfloat16"
experiment = teach.run_live(panel.plot, folder, "offload_folder", dtype=experiment_dtype,
                            max_memory=offload.max_memory_bytes, offload_folder=workdir / "experiment",
                            note=f"dtype={experiment_dtype}")
assert experiment.ok, experiment.error
teach.say(teach.reports_table([offload, experiment], [info.dtype, experiment_dtype], label_header="dtype",
                              columns=["peak_above_baseline_bytes", "peak_ratio", "offload_written"]))
teach.say("Placed by the device map: " + "; ".join(
    f"{dtype}: RAM {teach.fmt(r.bytes_on('cpu'))}, disk {teach.fmt(r.bytes_on('disk'))}"
    for dtype, r in ((info.dtype, offload), (experiment_dtype, experiment))) + ".")

# %% [markdown]
# ## Exercise 1: judge the claims
#
# Mark each claim `True` (it holds) or `False` (the runs above refute it). The check compares your answers with
# `evidence`, which the cells above filled from the measurements.

# %%
my_answers = {
    "offload_folder is not a valid from_pretrained argument": ...,
    "passing low_cpu_mem_usage=True lowers the peak": ...,
    "memory fragmentation stops a large allocation": ...,
    "offload_folder works only with accelerate installed": ...,
    "the offload folder can be deleted once the model has loaded": ...,
}
teach.check_myths(my_answers, evidence, reasons)

# %% [markdown]
# ## Exercise 2: a safe loader
#
# Write `safe_load(path)` so that it loads a `.bin` checkpoint's tensors and refuses anything else. The check
# runs it in a fresh measured process: first on each shard of a harmless `.bin` checkpoint (it must return their
# tensors), then on a hostile file whose payload leaves a marker if it runs (it must refuse it).

# %%
safe_load = ...  # replace with: def safe_load(path): ...


teach.check_safe_loader(safe_load)

# %% [markdown]
# ## Your own line
#
# Paste the `from_pretrained(...)` line you use (or one you found in a tutorial) between the quotes below and run
# the cell. The checker reads each argument against the transformers installed here, then loads your call on this
# lesson's checkpoint as written and without each argument it found to do nothing. Names it cannot see (your
# model id, your folder) are replaced by the checkpoint and a temporary folder; any other value must be written
# out, such as `dtype=torch.bfloat16` or a `max_memory` dict. The line already there is a common one.

# %%
# ▶ YOUR LINE: paste it between the quotes, then run this cell.
my_call = 'AutoModelForCausalLM.from_pretrained("my-model", torch_dtype=torch.float16, offload_state_dict=True)'
display(lab.explain_call(my_call, checkpoint=folder, measure=True))

# %%
shutil.rmtree(workdir, ignore_errors=True)

# %% [markdown]
# ## Troubleshooting: what to look at when a load fails
#
# - **The process is killed with no Python error**: the OS ran out of RAM (the Linux OOM killer). Compare
#   the kernel's peak of each strategy (lesson 05).
# - **`RuntimeError: [enforce fail at alloc_cpu.cpp] ... DefaultCPUAllocator: can't allocate memory`**: the
#   message torch raises when one allocation is refused. Same cure: a lower peak (or a smaller dtype).
# - **`MemoryError`, or error 1455 on Windows**: the commit limit was reached. Check the commit figures above;
#   enlarge the paging file or pick a strategy with a lower peak.
# - **"Cannot copy out of meta tensor"**: a tensor was left on the meta device, usually a buffer of a model
#   built with `torch.device("meta")` (lesson 02).
# - **The offload folder stays empty**: the checkpoint is safetensors and is read in place; nothing is wrong
#   (lesson 03). Did you pass a `device_map`? Without one, `offload_folder` does nothing.
# - **`FileNotFoundError` for a `*.safetensors` file in the offload folder, during a forward pass**: the folder
#   was deleted (or cleaned) while the model was alive. Delete it only after `del model`.
# - **"had weights offloaded to the disk ... Please provide an `offload_folder`"**: a `.bin` (or converted)
#   checkpoint with layers on disk and no folder to re-save them in; pass one, or use safetensors.
# - **The offload folder fills up although the checkpoint is safetensors**: weights the model converts while
#   loading (most mixture-of-experts models) are saved again into the folder, as `.bin` weights are
#   (`transformers/integrations/accelerate.py`, the disk offload index's docstring).
# - **`UnpicklingError` or "unsafe pickle"**: a `.bin` file holds more than tensors. Ask where it came from;
#   prefer safetensors.
# - **RSS far below the model's size right after loading**: the weights are still in mapped files. Read RSS
#   after the first forward pass, split into anonymous and file-backed.
#
# ## Summary
#
# - `lab.explain_call(line, checkpoint=..., measure=True)` (or `offload-lab explain 'line' --checkpoint DIR
#   --measure`) says what the installed transformers does with each argument of a call, with the line that
#   decides it, and measures the call with and without each argument that does nothing.
# - `offload_folder` is a valid `from_pretrained` argument, effective only with a `device_map` (which needs
#   accelerate); it holds the disk weights of a `.bin` model as long as the model runs: delete it after the model;
#   `low_cpu_mem_usage` is not what saves memory in the transformers installed here; fragmentation does not
#   stop a contiguous allocation.
# - Error 1455 is about Windows' commit limit, which is why transformers reads files with `pread` there.
# - RSS includes mapped file pages; read its split, and after a forward pass.
# - Never unpickle a `.bin` file without `weights_only=True` (torch's default since 2.6, which transformers
#   requires for `.bin` files: CVE-2025-32434).
