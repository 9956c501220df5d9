"""Helpers for Offload Lab's own tests: is Chromium there (``check_browser``), and a throw-away JupyterLab
server for the real-browser tests (``lab``). Not part of the learner-facing API; imports nothing heavy."""
