"""Measurement: the memory probe (sampler thread, kernel peak, Timeline) and the isolated runner.

Imports ``widgetlib.core``; never the widgets.
"""
