"""Solutions to lesson 03's exercises, kept out of the notebook a learner opens.

``SOLUTIONS`` maps each exercise's blank line(s), exactly as the lesson ships them, to the answer that replaces
them. ``tests/test_lessons.py`` substitutes them into the notebook and executes it with strict checks: every
check must pass.
"""

SOLUTIONS: dict[str, str] = {
    (
        'my_max_memory = ...\n'
    ): (
        '# The planner keeps room for the largest layer next to what it places in RAM, so half of the bytes is\n'
        '# not half on disk: try tenths of the weights with the same planner and keep the closest to half.\n'
        'tenths = [info.total_bytes * k // 10 for k in range(1, 11)]\n'
        'my_max_memory = min(tenths, key=lambda m: abs(teach.disk_share(folder, m).get("disk", 0) / info.total_bytes\n'
        '                                              - 0.5))\n'
    ),
    (
        'my_answer = {\n'
        '    "safetensors + from_pretrained": ...,\n'
        '    ".bin + from_pretrained": ...,\n'
        '    "safetensors + accelerate": ...,\n'
        '}\n'
    ): (
        'my_answer = {\n'
        '    "safetensors + from_pretrained": False,\n'
        '    ".bin + from_pretrained": True,\n'
        '    "safetensors + accelerate": True,\n'
        '}\n'
    ),
}
