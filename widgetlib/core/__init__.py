"""The loader core: sizes, learner-facing errors, checkpoints, the four loading strategies, peak estimates.

Nothing here imports the measurement layer or the widgets; they import this.
"""
