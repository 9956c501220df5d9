# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 05 · Choosing a strategy
#
# *Step through a lesson with **Shift+Enter**, one cell at a time, to watch each load as it happens. Under
# Run All, JupyterLab shows the notebook's last cell while the cells above it run: a panel or board brings its
# plot back into view when its load starts; to watch any other plot, scroll up to it.*
#
# **What you will learn**
#
# - the four strategies side by side on one checkpoint: predicted peak against measured peak, load time,
#   forward time, disk written;
# - how to **simulate a smaller machine** with a real memory limit, and what it does: anonymous memory gets a
#   load killed, file-backed pages are dropped and read again (time, not the process);
# - a decision table built from your own measurements, not from advice.

# %%
import importlib.util

if importlib.util.find_spec("widgetlib") is None:  # a Jupyter without Offload Lab: install the clone it is in
    get_ipython().run_line_magic("pip", "install --quiet ..")  # noqa: F821 (Offload Lab is not on PyPI)

from IPython.display import display

import widgetlib as lab
from widgetlib import teach

versions = teach.print_versions()

# %% [markdown]
# ## All four, one plot
#
# The **CompareBoard** runs `normal`, `low_cpu_mem_usage`, `offload_folder` and `manual_shards` one after
# another, each in a fresh process, and overlays their RAM curves. Unless told otherwise, `offload_folder` lets
# the weights fill a default `max_memory` of RAM (printed below) and sends the rest to disk.

# %%
folder = lab.demo_checkpoint()
info = lab.inspect_checkpoint(folder)
teach.say(f"Checkpoint {teach.fmt(info.total_bytes)}; default `max_memory` for `offload_folder`: "
          f"{teach.fmt(lab.default_max_memory_bytes(info))}.")
board = lab.CompareBoard(folder)
display(board)

# %%
reports = board.run()
assert [r.strategy for r in reports] == list(lab.STRATEGIES) and all(r.ok for r in reports), \
    [(r.strategy, r.error) for r in reports]
by_name = {r.strategy: r for r in reports}

# %% [markdown]
# ### What you just saw: predicted against measured

# %%
teach.say(teach.reports_table(reports, predicted=True))
teach.say(teach.prediction_lines(reports))
teach.say(teach.prediction_gap(reports, {r.strategy: teach.growth_at_peak(r) for r in reports}))
teach.say(teach.same_logits_sentence(reports, teach.same_logits(reports)))

# %%
# What the lessons so far taught, checked on this run with honest margins.
assert teach.same_logits(reports), "the same weights, however loaded, give the same logits"
assert by_name["normal"].peak_ratio >= 1.6, "normal loading holds two copies at its peak"
exact = all(teach.peak_is_exact(r) for r in reports)  # the portable probe's peaks may include start-up
for name in ("low_cpu_mem_usage", "manual_shards"):
    assert by_name[name].peak_above_baseline_bytes <= teach.one_copy_limit(info.total_bytes) or not exact, name
assert by_name["offload_folder"].peak_ratio < by_name["low_cpu_mem_usage"].peak_ratio or not exact, \
    "offloading keeps less"

# %% [markdown]
# ## A smaller machine, made real
#
# A learner's laptop has a fixed amount of RAM, and part of it is taken before the model loads (the OS, the
# browser, Python and torch themselves). What happens when a load needs more depends on the *kind* of memory:
#
# - **anonymous memory** (what a process allocates itself: a random-weight model, a state dict read into RAM)
#   could only be moved out to swap, and the simulated machine has none (a real one with swap would swap it out
#   first, and slow down): when it does not fit, the kernel kills the process (an OOM kill);
# - **clean file-backed pages** (a memory-mapped safetensors file, the page cache) are a copy of a file: under
#   pressure the kernel drops them and reads them again from disk when they are touched (a *major page fault*).
#   That costs time, not the process.
#
# The runner makes the budget a real limit where the machine allows it: the loading process goes into a memory
# cgroup of its own (`budget_mode` `"cgroup"`). On a Linux desktop with systemd, as a normal user, that cgroup is
# a transient scope with `MemoryMax` that your user manager makes around the loading process. Where none can be
# made (macOS, Windows, a locked-down container, a user manager without the memory controller) a watchdog stops the run
# instead (`budget_mode` `"watchdog"`); the cell below says what it counts here, and why no real limit was made.
# The budget is computed from the runs above, never typed in (the cell says from what). Each run starts with
# a **cold cache** (the checkpoint's pages dropped from the page cache first), so what it reads of the
# checkpoint, it reads from disk.

# %%
one_copy = [by_name[s] for s in ("low_cpu_mem_usage", "offload_folder", "manual_shards")]
budget, budget_basis = teach.limit_budget(one_copy, too_big=by_name["normal"])
baseline = by_name["normal"].baseline_rss_bytes
room = budget - baseline
held = {r.strategy: teach.non_reclaimable_growth(r) for r in reports}
teach.say(teach.budget_room(budget, budget_basis, by_name["normal"], one_copy, held))
if budget_basis == "non-reclaimable":
    heaviest = max(one_copy, key=lambda r: r.peak_above_baseline_bytes)
    assert max(held[r.strategy] for r in one_copy) < room < held["normal"], (held, room)
    assert room < heaviest.peak_above_baseline_bytes, "the room must squeeze the file-backed pages of one load"

# %% [markdown]
# ## Exercise 1: predict which strategies finish
#
# Using the figures above (how much each load grew, and how much of it was memory that cannot be given back),
# write the set of strategies you expect to **finish** under the budget. The check, in the cell right after the
# budgeted runs below, compares it with them and explains each strategy you got wrong from its run; to try
# again, edit this cell, run it, then run only the check cell (the runs need not run again).

# %%
my_prediction = ...
teach.say("Your prediction is checked in the cell after the budgeted runs below.")

# %%
budget_plot = lab.MemoryPlot()
display(budget_plot.figure)

# %%
# Cold cache, so each run reads what it needs from disk; the four, one after another, each under the budget.
budget_reports = [teach.run_live(budget_plot, folder, s, budget=budget, cold_cache=True) for s in lab.STRATEGIES]
budget_by_name = {r.strategy: r for r in budget_reports}

# %%
teach.check_fits_prediction(my_prediction, budget_reports)

# %% [markdown]
# ### What you just saw

# %%
teach.say(teach.reports_table(budget_reports, label_header="strategy",
                              columns=["outcome", "budget_mode", "major_faults", "oom_kills", "peak_rss_bytes"]))
stopped = budget_by_name["normal"]
finished = [r for r in budget_reports if r.ok]
mode = stopped.budget_mode
teach.say(teach.budget_outcomes(budget_reports, by_name, budget, room, exact=exact))
assert stopped.outcome == "stopped_by_budget" or not exact, "two copies of anonymous memory cannot fit the room"
assert not exact or all(budget_by_name[s].ok for s in ("low_cpu_mem_usage", "offload_folder", "manual_shards")), \
    [(r.strategy, r.error) for r in budget_reports]
if mode == "cgroup" and exact:
    assert stopped.limit_events["oom_kill"] >= 1, stopped.limit_events
    assert all(r.limit_events["oom_kill"] == 0 for r in finished), [r.limit_events for r in finished]

# %% [markdown]
# ## Exercise 2: what does a limit count?
#
# One strategy was stopped and the others finished, though some of them touched more memory than the room.
# Which kind of memory decided it: `"anonymous"` or `"file-backed"`? The check judges your answer from how much
# of each kind every run above added.

# %%
my_kind = ...
teach.check_what_a_limit_counts(my_kind, reports, budget_reports)

# %% [markdown]
# ## A decision table from your measurements

# %%
teach.say(teach.decision_table(budget_reports, budget))
teach.say(teach.budget_limits(budget_reports, budget))

# %% [markdown]
# ## Experiment
#
# Change the **budget**: set `experiment_budget` below (it starts at the baseline plus three quarters of the
# room above) and run the cell; it repeats the budgeted `manual_shards` run, cold cache and all, on the plot
# above. Expected, under a kernel limit: the tighter the room, the more of the checkpoint the kernel must read
# again (more major faults, a slower steady forward), until the room no longer holds even the memory the load
# cannot give back, and it is stopped. Under the watchdog nothing is re-read; there the budget only decides who
# is stopped. Try `cold_cache=False` too: the first reads then come from the page cache, not the disk.

# %%
experiment_budget = baseline + room * 3 // 4
experiment = teach.run_live(budget_plot, folder, "manual_shards", budget=experiment_budget, cold_cache=True,
                            note=f"budget {teach.fmt(experiment_budget)}")
full = budget_by_name["manual_shards"]
teach.say(teach.reports_table([full, experiment],
                              [f"budget {teach.fmt(budget)}", f"budget {teach.fmt(experiment_budget)}"],
                              label_header="manual_shards",
                              columns=["outcome", "budget_mode", "major_faults", "steady_forward_s"]))
if experiment.ok:
    ended = (f"finished, with {experiment.major_faults} major faults against {full.major_faults} under "
             f"{teach.fmt(budget)}.")
elif experiment.outcome == "stopped_by_budget":
    ended = (f"was stopped: what it cannot give back ({teach.fmt(held['manual_shards'])} as its unbudgeted run "
             "grew) and what the limit charges beyond it no longer fit the room.")
else:
    ended = f"did not finish: {experiment.error}."
teach.say(f"Under {teach.fmt(experiment_budget)} (room {teach.fmt(experiment_budget - baseline)}), `manual_shards` "
          + ended)

# %% [markdown]
# ## Summary
#
# - Peaks can be predicted from the checkpoint's headers alone; the table at the top shows how close the
#   predictions came.
# - A real memory limit kills a load for the memory it cannot reclaim: anonymous memory, such as `normal`'s two
#   copies. File-backed pages (a mapped safetensors checkpoint) are dropped and read again: a tight budget costs
#   major faults and time, not the process. A watchdog that counts only anonymous memory gives the same
#   outcomes without the re-reads; one that counts all of RSS is stricter than the kernel.
# - Plain `from_pretrained` (meta-device loading, always on in transformers 5) is the first choice when one copy
#   fits; offloading is for when it does not, and its forward passes read weights from disk; manual shards are
#   for when you need control over each tensor.
# - Lesson 06 checks, one by one, the claims this lab started from.
