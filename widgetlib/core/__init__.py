"""The loader core: options (options.py: dtypes, formats, LoadOptions, every option's default), sizes,
learner-facing errors, checkpoints, the strategy registry (registry.py), the loads it names (strategies.py) and
the dispatcher (loading.py), peak estimates.

Nothing here imports the measurement layer or the widgets; they import this.
"""
