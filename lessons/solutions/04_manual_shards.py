"""Solutions to lesson 04's exercises, kept out of the notebook a learner opens.

``SOLUTIONS`` maps each exercise's blank line(s), exactly as the lesson ships them, to the answer that replaces
them. ``tests/test_lessons.py`` substitutes them into the notebook and executes it with strict checks: every
check must pass.
"""

SOLUTIONS: dict[str, str] = {
    (
        'my_file = ...\n'
    ): (
        'my_file = index["weight_map"]["lm_head.weight"]\n'
    ),
    (
        'my_loader = ...  # replace with: def my_loader(folder): ... return model\n'
    ): (
        'def my_loader(folder):\n'
        '    model = build_empty_model(folder)\n'
        '    for path in shard_files(folder):\n'
        '        model.load_state_dict(read_shard(path), strict=False, assign=True)\n'
        '    return model\n'
    ),
}
