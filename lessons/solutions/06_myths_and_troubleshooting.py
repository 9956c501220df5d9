"""Solutions to lesson 06's exercises, kept out of the notebook a learner opens.

``SOLUTIONS`` maps each exercise's blank line(s), exactly as the lesson ships them, to the answer that replaces
them. ``tests/test_lessons.py`` substitutes them into the notebook and executes it with strict checks: every
check must pass.
"""

SOLUTIONS: dict[str, str] = {
    (
        'my_answers = {\n'
        '    "offload_folder is not a valid from_pretrained argument": ...,\n'
        '    "passing low_cpu_mem_usage=True lowers the peak": ...,\n'
        '    "memory fragmentation stops a large allocation": ...,\n'
        '}\n'
    ): (
        'my_answers = {\n'
        '    "offload_folder is not a valid from_pretrained argument": False,\n'
        '    "passing low_cpu_mem_usage=True lowers the peak": False,\n'
        '    "memory fragmentation stops a large allocation": False,\n'
        '}\n'
    ),
    (
        'safe_load = ...  # replace with: def safe_load(path): ...\n'
    ): (
        'def safe_load(path):\n'
        '    return torch.load(path, map_location="cpu", weights_only=True)\n'
    ),
}
