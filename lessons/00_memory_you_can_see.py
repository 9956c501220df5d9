# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 00 · Memory you can see
#
# *Step through a lesson with **Shift+Enter**, one cell at a time, to watch each load as it happens. Under
# Run All, JupyterLab shows the notebook's last cell while the cells above it run: a panel or board brings its
# plot back into view when its load starts; to watch any other plot, scroll up to it.*
#
# *When you have finished a lesson, shut its kernel down (Kernel → Shut Down Kernel): an open lesson's kernel
# holds RAM until then. The spare process it keeps ready for measured runs ends by itself once the kernel has
# run nothing for a while (`OFFLOAD_LAB_IDLE_EXIT_S`, see the README); the next load then starts a new one.*
#
# **What you will learn**
#
# - what "RAM used" means for a process: the *resident set* (RSS), and its two kinds, **anonymous** memory
#   (your tensors, Python objects) and **file-backed** memory (pages of files mapped into the process);
# - what the **page cache** is, and why reading a file twice is faster the second time;
# - why the **kernel's peak** (VmHWM) is the number to trust, not a sampled curve;
# - why a process's memory often does **not** go down after `del`, and what `malloc_trim` does about it;
# - the checkpoint every lesson loads, and how to look inside it without loading it.
#
# Every number on this page is measured while you run it, on your machine. Nothing is typed in.

# %%
import importlib.util

if importlib.util.find_spec("widgetlib") is None:  # a Jupyter without Offload Lab: install the clone it is in
    get_ipython().run_line_magic("pip", "install --quiet ..")  # noqa: F821 (Offload Lab is not on PyPI)

from IPython.display import display

import widgetlib as lab
from widgetlib import teach

versions = teach.print_versions()

# %% [markdown]
# ## The checkpoint
#
# The lessons load a real Hugging Face checkpoint: a LLaMA-style model with random weights, built on your disk
# the first time (no download) and cached. Its size comes from the `OFFLOAD_LAB_SIZE` environment variable;
# unset, `demo_checkpoint()` builds its one default size, which may be too big for a small laptop: set
# `OFFLOAD_LAB_SIZE` before starting Jupyter to choose another. `inspect_checkpoint` reads only the
# file headers, so it costs no RAM.

# %%
folder = lab.demo_checkpoint()
info = lab.inspect_checkpoint(folder)
teach.say(
    f"`{folder}`: **{info.parameters:,} parameters** in {info.dtype}, **{teach.fmt(info.total_bytes)}** of "
    f"tensors in {len(info.shards)} {info.format} file(s); the largest tensor is `{info.largest_tensor}` "
    f"({teach.fmt(info.largest_tensor_bytes)})."
)
teach.say("\n".join(["| file | on disk | tensors |", "|---|---:|---:|"]
                    + [f"| {s.file} | {teach.fmt(s.file_bytes)} | {s.tensors} |" for s in info.shards]))

# %% [markdown]
# ## RSS, and its two kinds
#
# The operating system hands memory to a process in *pages* (small fixed-size blocks). A page the process has
# actually touched sits in physical RAM; the count of those pages is the **resident set size**, RSS, the figure
# `top` and the Task Manager show. On Linux it splits into:
#
# - **anonymous** pages: memory that belongs to no file, such as the Python heap, tensors, the result of
#   `torch.empty`. Only the program can give it back.
# - **file-backed** pages: pages of a file mapped into the process with `mmap`, like shared libraries or a
#   `.safetensors` file. They are the kernel's *page cache*, shared with every other reader of that file, and the
#   kernel may drop them under pressure, because it can read them again from disk.
#
# This kernel is a process too. Here it is now:

# %%
now = lab.read_memory()
teach.say(
    f"This kernel: RSS **{teach.fmt(now.rss_bytes)}** = anonymous {teach.fmt(now.rss_anon_bytes)} + "
    f"file-backed {teach.fmt(now.rss_file_bytes)} (mostly the code of Python, torch and their libraries)."
)

# %% [markdown]
# ## Watch a file become memory
#
# Now map the largest shard of the checkpoint into this kernel with `mmap`, read one byte of every page, copy
# the whole file into a `bytearray`, and let both go. The plot below draws this kernel's own memory as it
# happens: the solid line is RSS, dashed is anonymous, dotted is file-backed.

# %%
shard_path = folder / info.largest_shard.file
plot = lab.MemoryPlot(title="This kernel's RAM while it maps, reads and copies one shard")
display(plot.figure)

# %%
with teach.watch_this_kernel(plot, label="this kernel") as mark:
    stages = teach.mmap_probe(shard_path, mark=mark)

rows = ["| step | RSS | anonymous | file-backed |", "|---|---:|---:|---:|"]
rows += [f"| {name} | {teach.fmt(s.rss_bytes)} | {teach.fmt(s.rss_anon_bytes)} | {teach.fmt(s.rss_file_bytes)} |"
         for name, s in stages.items()]
teach.say("\n".join(rows))

# %% [markdown]
# ### What you just saw

# %%
shard_bytes = shard_path.stat().st_size
mapped, touched, copied = stages["mapped"], stages["touched"], stages["copied"]
if touched.rss_file_bytes is not None:
    file_growth = touched.rss_file_bytes - mapped.rss_file_bytes
    anon_growth = copied.rss_anon_bytes - touched.rss_anon_bytes
    teach.say(
        f"- Mapping the {teach.fmt(shard_bytes)} file changed RSS by "
        f"{teach.fmt(mapped.rss_bytes - stages['start'].rss_bytes)}: a mapping is a promise, not memory.\n"
        f"- Reading every page added **{teach.fmt(file_growth)} of file-backed** memory and "
        f"{teach.fmt(touched.rss_anon_bytes - mapped.rss_anon_bytes)} of anonymous memory: the pages are the "
        "page cache's, lent to this process.\n"
        f"- Copying the file added **{teach.fmt(anon_growth)} of anonymous** memory: a private copy that only "
        "this process can free.\n"
        f"- After the copy was deleted and the file unmapped, RSS was back to "
        f"{teach.fmt(stages['unmapped'].rss_bytes)}."
    )
    # What this section teaches, checked with honest margins (a page or two of Python bookkeeping aside).
    assert file_growth >= 0.8 * shard_bytes, "reading a mapped file should make its pages file-backed RSS"
    assert anon_growth >= 0.8 * shard_bytes, "copying it should make the same amount of anonymous RSS"
else:
    teach.say("This OS does not split RSS into anonymous and file-backed; the RSS column still shows each step.")

# %% [markdown]
# ## The page cache
#
# After a file has been read, the kernel keeps its contents in otherwise unused RAM, the **page cache**, in case
# someone reads it again. That memory belongs to no process (it shows as "buff/cache" in `free`, "Cached" in
# the Task Manager) and is given up the moment a program needs RAM. Below, the kernel is asked to drop the shard
# from its cache (`posix_fadvise`, no privileges needed), then the file is read twice.

# %%
cache = teach.page_cache_probe(shard_path)
if cache["evicted"]:
    faster = cache["cold_s"] / max(cache["warm_s"], 1e-9)
    teach.say(
        f"First read (from disk) of {teach.fmt(cache['bytes'])}: {cache['cold_s'] * 1000:.1f} ms; second read "
        f"(from the page cache): {cache['warm_s'] * 1000:.1f} ms, {faster:.1f} times "
        f"{'faster' if faster >= 1 else 'slower (a virtual disk may cache on the host too)'}."
    )
else:
    teach.say(f"This OS cannot drop one file from the cache; both reads took {cache['cold_s'] * 1000:.1f} ms and "
              f"{cache['warm_s'] * 1000:.1f} ms.")

# %% [markdown]
# ## The kernel's peak beats a sampled curve
#
# A plot like the one above *samples* memory many times a second. A spike shorter than the gap between two
# samples is invisible to it. The kernel, though, keeps a **high-water mark** of every process's RSS (`VmHWM` in
# `/proc/PID/status` on Linux, the peak working set on Windows) that no spike escapes. Offload Lab reports the
# kernel's peak and draws the sampled curve. Here a short spike, the size of the largest shard, is made while
# a slow sampler watches:

# %%
spike = teach.spike_probe(info.largest_shard.file_bytes, interval_s=0.1)
if spike["kernel_peak"] is not None:
    teach.say(
        f"Before the spike: RSS {teach.fmt(spike['before'])}. The sampler ({spike['samples']} samples) saw at most "
        f"**{teach.fmt(spike['sampled_peak'])}**; the kernel's mark says **{teach.fmt(spike['kernel_peak'])}**"
        + ("" if spike["reset"] else " (the mark could not be reset here, so it is this kernel's lifetime peak)")
        + "."
    )
    # Linux batches RSS counters per CPU, so a sample may read a little above the mark; beyond that, never.
    assert spike["kernel_peak"] >= spike["sampled_peak"] - 1_000_000, "the kernel's peak is never below a sample"
    assert spike["kernel_peak"] >= spike["before"] + 0.8 * info.largest_shard.file_bytes, "the kernel saw the spike"
else:
    teach.say(f"Before the spike: RSS {teach.fmt(spike['before'])}. The sampler ({spike['samples']} samples) saw "
              f"at most **{teach.fmt(spike['sampled_peak'])}**. This OS gives this kernel no high-water mark to "
              "read here, so the spike's true height cannot be shown; the measured runs below report the best "
              "peak this OS has.")

# %% [markdown]
# ## Why memory does not come back after `del`
#
# `del x` removes a *name*. When the last reference goes, Python frees the object, but "free" means "give it
# back to the **allocator**" (the C library's `malloc`), not to the operating system. The allocator keeps freed
# memory to reuse it. Large blocks get their own mapping and go straight back to the OS; many small blocks share
# the heap, and a heap with a few survivors scattered across it cannot shrink. `gc.collect()` does not help
# (it only finds reference cycles); on Linux, glibc's `malloc_trim(0)` asks the allocator to return the free
# pages it holds.
#
# This runs in a separate small process, measured from outside with Offload Lab's probe, so this kernel's own
# history does not blur it.

# %%
alloc_bytes = min(max(info.total_bytes, 50_000_000), 200_000_000)  # enough to see, small enough for any laptop
alloc = teach.allocator_probe(alloc_bytes)
rows = ["| step | RSS | anonymous |", "|---|---:|---:|"]
rows += [f"| {name} | {teach.fmt(s.rss_bytes)} | {teach.fmt(s.rss_anon_bytes)} |" for name, s in alloc.items()]
teach.say("\n".join(rows))

# %% [markdown]
# ### What you just saw

# %%
big_in = alloc["big_allocated"].rss_bytes - alloc["start"].rss_bytes
big_back = alloc["big_allocated"].rss_bytes - alloc["big_deleted"].rss_bytes
small_in = alloc["small_allocated"].rss_bytes - alloc["big_deleted"].rss_bytes
small_back = alloc["small_allocated"].rss_bytes - alloc["gc_collected"].rss_bytes
lines = [
    f"- One block of {teach.fmt(alloc_bytes)}: allocating it added {teach.fmt(big_in)}; `del` gave back "
    f"**{teach.fmt(big_back)}** at once.",
    f"- The same amount in small blocks added {teach.fmt(small_in)}; after `del` and `gc.collect()` only "
    f"**{teach.fmt(small_back)}** went back to the OS.",
]
if "malloc_trimmed" in alloc:
    trimmed = alloc["gc_collected"].rss_bytes - alloc["malloc_trimmed"].rss_bytes
    lines.append(f"- `malloc_trim(0)` then returned **{teach.fmt(trimmed)}** that the allocator had kept.")
teach.say("\n".join(lines))
assert big_back >= 0.8 * alloc_bytes, "a big block is returned to the OS as soon as it is freed"
if "malloc_trimmed" in alloc:  # glibc: the heap keeps small freed blocks until trimmed
    assert small_back <= 0.5 * small_in, "freed small blocks should mostly stay with the allocator"
    assert trimmed >= 0.5 * small_in, "malloc_trim should hand most of them back"

# %% [markdown]
# ## Now a real load
#
# Everything above happens inside `from_pretrained` too. A **StrategyPanel** loads the checkpoint in a fresh
# process (so this kernel holds none of it), samples its memory from outside, and reports the kernel's peak.
# Here it runs `from_pretrained`, the strategy called `low_cpu_mem_usage` in this lab. Watch the dotted
# file-backed line: safetensors files are *mapped*, not read.

# %%
panel = lab.StrategyPanel(folder, strategy="low_cpu_mem_usage")
display(panel)

# %%
report = panel.run()
assert report is not None and report.ok, panel.message or (report and report.error)
loaded = teach.sample_at(report, teach.first_event(report, "loaded").t_s)
ready = teach.sample_at(report, teach.first_event(report, "ready").t_s)
embed_name, embed_bytes = teach.embedding_table(folder)
forward_tokens = lab.LoadOptions().forward_tokens  # what the runner feeds its first forward

# %% [markdown]
# ### What you just saw

# %%
teach.say(teach.peak_sentence(report))
if loaded.rss_file_bytes is not None:
    grown = loaded.rss_bytes - ready.rss_bytes
    lazy = grown < 0.5 * info.total_bytes
    teach.say(
        f"When `from_pretrained` returned, the process had grown by **{teach.fmt(grown)}** "
        f"({teach.fmt(loaded.rss_anon_bytes - ready.rss_anon_bytes)} anonymous, "
        f"{teach.fmt(loaded.rss_file_bytes - ready.rss_file_bytes)} file-backed) for a "
        f"{teach.fmt(info.total_bytes)} model. "
        + ("So most weights were not in RAM yet: the parameters point into the mapped files and their pages "
           "come in when something reads them." if lazy else
           "So the weights were read into RAM during the load itself.")
    )
    # A forward of a few tokens reads every layer's weights but only its tokens' rows of the embedding table
    # (torch.nn.functional.embedding is a row lookup), so with mapped files some pages are never read.
    after = teach.growth(report, "ready")
    unread = info.total_bytes - after["file"]
    teach.say(
        f"By the end of the first forward pass the file-backed part had grown by **{teach.fmt(after['file'])}**, "
        f"{after['file'] / info.total_bytes:.2f}× the checkpoint. That figure counts two kinds of file pages: the "
        "checkpoint's, and those of torch's and transformers' own code and libraries that the load and the "
        "forward pass ran for the first time in this process. A forward pass reads every layer's weights, but "
        f"of the embedding table (`{embed_name}`, {teach.fmt(embed_bytes)}) only the rows of its "
        f"{forward_tokens} tokens (the kernel's read-ahead may bring neighbouring pages in too): "
        + (f"the growth is {teach.fmt(unread)} short of one checkpoint, so at least that much of the checkpoint, "
           "pages of rows no token used, was never read into the process. That is how a mapped load can peak "
           "below one checkpoint." if unread > 0 else
           "the growth reaches one checkpoint here, and the library code in it hides how much of the table "
           "stayed unread.")
    )
    # Only the embedding table may stay unread: every other weight takes part in the forward.
    assert unread <= embed_bytes + 2_000_000, (unread, embed_bytes)

# %% [markdown]
# ## dtype: the biggest lever
#
# A model's size in RAM is parameters × bytes per number, whatever its name says. This checkpoint stores
# float32, four bytes a number; bfloat16 takes two. The notes this lab answers guessed "about one byte per
# parameter"; the table works it out for this checkpoint and for a seven-billion-parameter model.
#
# `dtype="auto"`, transformers 5's default when you pass no dtype, loads in the dtype the checkpoint's
# `config.json` names, or, without one, the dtype of its first floating-point weights: a bfloat16 checkpoint
# stays bfloat16, and a float32 one stays float32 unless you ask for less.

# %%
# transformers/modeling_utils.py: from_pretrained sets dtype = "auto" when none is given (~4186), and "auto"
# takes config.dtype, else the weights' own dtype (~829-849).
bytes_per_number = lab.BYTES_PER_NUMBER  # float32 4, bfloat16 2, float16 2
rows = ["| model | parameters | float32 | bfloat16 |", "|---|---:|---:|---:|"]
for name, n_params in (("this checkpoint", info.parameters), ("a 7-billion-parameter model", 7_000_000_000)):
    rows.append(f"| {name} | {n_params:,} | {teach.fmt(n_params * bytes_per_number['float32'])} | "
                f"{teach.fmt(n_params * bytes_per_number['bfloat16'])} |")
teach.say("\n".join(rows))

# %% [markdown]
# Now the same load as above, asked for `dtype="bfloat16"` (the panel's dtype control does the same), drawn on
# the same plot. Watch two figures: the kernel's peak, and the anonymous memory the model keeps at the end.

# %%
bf16 = teach.run_live(panel.plot, folder, "low_cpu_mem_usage", dtype="bfloat16", note="dtype=bfloat16")
assert bf16.ok, bf16.error

kept = ["anon_kept_bytes", "file_kept_bytes"]  # what the loaded model keeps, above the load start
teach.say(teach.reports_table([report, bf16], ["float32 (as stored)", "bfloat16"], label_header="dtype",
                              columns=["peak_above_baseline_bytes", "peak_ratio", *kept]))
bf_anon, _ = teach.kept_at_end(bf16)
if bf_anon is not None:
    teach.say(
        f"The bfloat16 model keeps **{teach.fmt(bf_anon)}** of anonymous memory, "
        f"{bf_anon / info.total_bytes:.2f}× the float32 checkpoint: half the bytes per number, in memory of its "
        f"own (converted, so no longer pages of the file). Yet its kernel peak, {bf16.peak_ratio:.2f}× the "
        "checkpoint, is *higher* than float32's: while converting, the float32 file pages it reads and the "
        "bfloat16 copy it makes are both resident. The file pages can be dropped and read again; the bfloat16 "
        "copy cannot, and a real memory limit counts it for as long as the model lives."
    )
    # Measured at 40MB-600MB: anonymous kept 0.54-0.63x (half plus the forward's bookkeeping), peak 1.5-1.6x.
    assert 0.4 * info.total_bytes <= bf_anon <= 0.6 * info.total_bytes + teach.FIXED_OVERHEAD_BYTES, bf_anon
    assert bf16.peak_above_baseline_bytes >= 1.2 * info.total_bytes, "float32 pages + bfloat16 copy at the peak"
    assert bf16.peak_above_baseline_bytes > report.peak_above_baseline_bytes, "converting peaks higher"
else:
    teach.say(f"Kernel peaks: float32 {report.peak_ratio:.2f}×, bfloat16 {bf16.peak_ratio:.2f}× the checkpoint. "
              "This OS does not split RSS into anonymous and file-backed, so what the bfloat16 model keeps "
              "cannot be told apart here from the float32 file pages it read.")

# %% [markdown]
# ## Experiment
#
# Change the **file** the mmap and page-cache experiments read: `experiment_shards` below picks a checkpoint of
# the same model saved in that many shards (1: the whole model in one file, larger than any shard above, for a
# moment mapped and copied in this kernel), and the cell maps, reads, copies and re-reads its largest file.
# Expected: the file-backed growth and the anonymous copy both follow the file's size (about one file each),
# and the first read after the pages were dropped is the slow one, from disk.

# %%
experiment_shards = 1
experiment_folder = lab.demo_checkpoint(shards=experiment_shards)
experiment_file = experiment_folder / lab.inspect_checkpoint(experiment_folder).largest_shard.file
trial = teach.mmap_probe(experiment_file)
trial_cache = teach.page_cache_probe(experiment_file)
size = experiment_file.stat().st_size
if trial["touched"].rss_file_bytes is not None:
    teach.say(
        f"`{experiment_file.name}` ({experiment_shards} shard(s)): {teach.fmt(size)}, "
        f"{size / shard_bytes:.2f}× the shard above. Reading every page added "
        f"{teach.fmt(trial['touched'].rss_file_bytes - trial['mapped'].rss_file_bytes)} of file-backed memory "
        f"(the shard above: {teach.fmt(file_growth)}); the copy added "
        f"{teach.fmt(trial['copied'].rss_anon_bytes - trial['touched'].rss_anon_bytes)} of anonymous memory "
        f"(the shard above: {teach.fmt(anon_growth)}). Reads: {trial_cache['cold_s'] * 1000:.1f} ms "
        f"{'from disk' if trial_cache['evicted'] else '(this OS could not drop the file from the cache)'}, then "
        f"{trial_cache['warm_s'] * 1000:.1f} ms from the page cache."
    )
else:
    teach.say(f"`{experiment_file.name}`: {teach.fmt(size)}; RSS after reading every page "
              f"{teach.fmt(trial['touched'].rss_bytes)}, after the copy {teach.fmt(trial['copied'].rss_bytes)}.")

# %% [markdown]
# ## Exercises
#
# **1.** In the mmap experiment, reading every page of the mapped file made one kind of RSS grow. Which one:
# `"anonymous"` or `"file-backed"`? Change the answer and run the cell to see what the check says.

# %%
answer = ...
teach.check_mmap_answer(answer, stages)

# %% [markdown]
# **2.** Using only `info` (from `inspect_checkpoint`), write an expression for the bytes the model's weights
# take in RAM once loaded in the checkpoint's dtype. Hint: `info.parameters`, and how many bytes one
# `info.dtype` number takes.

# %%
model_bytes = ...
teach.check_model_bytes(model_bytes, info)

# %% [markdown]
# ## Summary
#
# - RSS is what a process holds in RAM: **anonymous** pages (its own copies) plus **file-backed** pages (mapped
#   files, shared with the page cache and droppable).
# - Mapping a file costs nothing until it is read; reading maps the page cache in; copying makes anonymous memory.
# - Trust the **kernel's peak**: a sampled curve can miss a spike.
# - `del` returns memory to the allocator; whether the OS sees it depends on block sizes and `malloc_trim`.
# - Next, lesson 01 loads the checkpoint the plain PyTorch way and finds the copies that make its peak.
