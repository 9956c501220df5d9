"""Lesson 06's offload-folder probes: each runs the installed libraries in a child process, so these tests pin
what the lesson teaches (deleting a live model's offload folder breaks its next forward pass, safetensors writes
nothing there, a device map needs accelerate) to the versions installed here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from widgetlib import teach


@pytest.fixture(scope="module")
def cleanup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return teach.offload_folder_probe(tmp_path_factory.mktemp("offload-probe"))


def test_deleting_a_bin_models_offload_folder_breaks_its_next_forward(cleanup):
    binary = cleanup["bin"]
    assert cleanup["disk_modules"] and binary["folder_made"] and binary["files"] > 0 and binary["bytes"] > 0
    error = binary["forward_after_delete"]
    assert error is not None and error["type"] == "FileNotFoundError", error
    assert binary["first_file"] in error["first_line"] or ".safetensors" in error["first_line"], error


def test_a_safetensors_model_writes_nothing_to_the_offload_folder(cleanup):
    safe = cleanup["safetensors"]
    assert safe["files"] == 0 and safe["bytes"] == 0 and safe["forward_after_delete"] is None, safe


def test_disk_layers_of_a_bin_without_a_folder_raise_the_trackers_error(cleanup):
    missing = cleanup["bin_without_folder"]
    assert missing is not None and missing["type"] == "ValueError", missing
    assert "offload_folder" in missing["first_line"].replace("`", ""), missing
    assert cleanup["all_on_disk"] is None, cleanup["all_on_disk"]


def test_a_device_map_needs_accelerate(small_checkpoint: Path):
    error = teach.without_accelerate_probe(small_checkpoint)
    assert error is not None and error["type"] == "ValueError" and "accelerate" in error["first_line"], error


def test_find_phrase_ignores_backticks_and_case():
    with_ticks = teach.find_phrase("please provide an `offload_folder`", limit=1)
    assert with_ticks and with_ticks == teach.find_phrase("Please provide an offload_folder", limit=1)
    assert "offload_folder" in with_ticks[0].text
