"""Solutions to lesson 05's exercises, kept out of the notebook a learner opens.

``SOLUTIONS`` maps each exercise's blank line(s), exactly as the lesson ships them, to the answer that replaces
them. ``tests/test_lessons.py`` substitutes them into the notebook and executes it with strict checks: every
check must pass.
"""

SOLUTIONS: dict[str, str] = {
    (
        'my_prediction = ...\n'
    ): (
        'my_prediction = {s for s in STRATEGIES\n'
        '                 if baseline + estimate_peak(info, s).peak_above_baseline_bytes <= budget}\n'
        'print(sorted(my_prediction))\n'
    ),
    (
        'my_choice = ...\n'
    ): (
        'my_choice = "offload_folder"\n'
    ),
}
