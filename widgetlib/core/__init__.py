"""The loader core: sizes, learner-facing errors, checkpoints, the strategy registry (registry.py) and the loads
it names (strategies.py), peak estimates.

Nothing here imports the measurement layer or the widgets; they import this.
"""
