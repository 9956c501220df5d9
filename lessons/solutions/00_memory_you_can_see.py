"""Solutions to lesson 00's exercises, kept out of the notebook a learner opens.

``SOLUTIONS`` maps each exercise's blank line(s), exactly as the lesson ships them, to the answer that replaces
them. ``tests/test_lessons.py`` substitutes them into the notebook and executes it with strict checks: every
check must pass.
"""

SOLUTIONS: dict[str, str] = {
    (
        'answer = ...\n'
    ): (
        'answer = "file-backed"\n'
    ),
    (
        'model_bytes = ...\n'
    ): (
        'model_bytes = info.parameters * 4\n'
    ),
}
