"""Solutions to lesson 02's exercises, kept out of the notebook a learner opens.

``SOLUTIONS`` maps each exercise's blank line(s), exactly as the lesson ships them, to the answer that replaces
them. ``tests/test_lessons.py`` substitutes them into the notebook and executes it with strict checks: every
check must pass.
"""

SOLUTIONS: dict[str, str] = {
    (
        'answer = ...\n'
    ): (
        'answer = False\n'
    ),
    (
        'my_empty = ...\n'
    ): (
        'with init_empty_weights():\n'
        '    my_empty = AutoModelForCausalLM.from_config(config)\n'
    ),
}
