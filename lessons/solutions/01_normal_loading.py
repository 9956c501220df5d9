"""Solutions to lesson 01's exercises, kept out of the notebook a learner opens.

``SOLUTIONS`` maps each exercise's blank line(s), exactly as the lesson ships them, to the answer that replaces
them. ``tests/test_lessons.py`` substitutes them into the notebook and executes it with strict checks: every
check must pass.
"""

SOLUTIONS: dict[str, str] = {
    (
        'my_prediction = ...\n'
    ): (
        'my_prediction = 2 * info.total_bytes\n'
    ),
    (
        'answer = ...\n'
    ): (
        'answer = "state_dict_read"\n'
    ),
}
