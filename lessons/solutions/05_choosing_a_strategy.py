"""Solutions to lesson 05's exercises, kept out of the notebook a learner opens.

``SOLUTIONS`` maps each exercise's blank line(s), exactly as the lesson ships them, to the answer that replaces
them. ``tests/test_lessons.py`` substitutes them into the notebook and executes it with strict checks: every
check must pass.
"""

SOLUTIONS: dict[str, str] = {
    (
        'my_prediction = ...\n'
    ): (
        '# A limit stops what cannot be given back: a strategy finishes when the memory it could not give back\n'
        '# (anonymous + shared, measured above) fits the room; its file-backed pages are dropped and re-read.\n'
        'my_prediction = {name for name, grown in held.items() if grown is not None and grown < room}\n'
        'print(sorted(my_prediction))\n'
    ),
    (
        'my_kind = ...\n'
    ): (
        'my_kind = "anonymous"\n'
    ),
}
