"""The answers to every lesson's exercises, kept out of the notebooks a learner opens.

``SOLUTIONS[lesson][blank]`` is the answer that replaces ``blank``: an exercise's blank line(s) exactly as the
lesson ships them (``answer = ...``). ``tests/test_lessons.py`` substitutes them into each notebook and executes it
with strict checks: every check must pass. Instructors: this is the answer key.
"""

SOLUTIONS: dict[str, dict[str, str]] = {
    "00_memory_you_can_see": {
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
    },
    "01_normal_loading": {
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
    },
    "02_low_cpu_mem_usage_and_meta": {
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
    },
    "03_offload_folder": {
        (
            'my_max_memory = ...\n'
        ): (
            '# The planner keeps room for the largest layer next to what it places in RAM, so half of the bytes is\n'
            '# not half on disk: try tenths of the weights with the same planner and keep the closest to half.\n'
            'tenths = [info.total_bytes * k // 10 for k in range(1, 11)]\n'
            'my_max_memory = min(tenths, key=lambda m: abs(\n'
            '    teach.disk_share(folder, m).get("disk", 0) / info.total_bytes - 0.5))\n'
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
    },
    "04_manual_shards": {
        (
            'my_file = ...\n'
        ): (
            'my_file = index["weight_map"]["lm_head.weight"]\n'
        ),
        (
            'my_loader = ...  # replace with: def my_loader(folder): ... return model\n'
        ): (
            'def my_loader(folder):\n'
            '    model = lab.build_empty_model(folder)\n'
            '    for path in lab.shard_files(folder):\n'
            '        model.load_state_dict(lab.read_shard(path), strict=False, assign=True)\n'
            '    return model\n'
        ),
    },
    "05_choosing_a_strategy": {
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
    },
    "06_myths_and_troubleshooting": {
        (
            'my_answers = {\n'
            '    "offload_folder is not a valid from_pretrained argument": ...,\n'
            '    "passing low_cpu_mem_usage=True lowers the peak": ...,\n'
            '    "memory fragmentation stops a large allocation": ...,\n'
            '    "offload_folder works only with accelerate installed": ...,\n'
            '    "the offload folder can be deleted once the model has loaded": ...,\n'
            '}\n'
        ): (
            'my_answers = {\n'
            '    "offload_folder is not a valid from_pretrained argument": False,\n'
            '    "passing low_cpu_mem_usage=True lowers the peak": False,\n'
            '    "memory fragmentation stops a large allocation": False,\n'
            '    "offload_folder works only with accelerate installed": True,\n'
            '    "the offload folder can be deleted once the model has loaded": False,\n'
            '}\n'
        ),
        (
            'safe_load = ...  # replace with: def safe_load(path): ...\n'
        ): (
            'def safe_load(path):\n'
            '    return torch.load(path, map_location="cpu", weights_only=True)\n'
        ),
    },
}
