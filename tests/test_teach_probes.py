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


@pytest.mark.skipif(not Path("/proc/sys/vm/overcommit_memory").exists(), reason="Linux's overcommit policy")
def test_reserving_more_than_the_free_ram_is_granted_and_a_wild_request_refused():
    """Lesson 06's reservation run, pinned to what the kernel documents: mode 0 compares one request with RAM plus
    swap (Documentation/admin-guide/sysctl/vm.rst), mode 2 with the commit limit, mode 1 refuses nothing."""
    figures = teach.commit_figures()
    ram_and_swap = figures["total"] + figures["swap_total"]
    mode = figures["overcommit_mode"]
    wild = teach.reserve_probe(2 * ram_and_swap)
    assert wild["granted"] is (mode == 1) and (wild["error"] is None) is (mode == 1), wild
    if mode == 0:  # untouched, so granted beyond what is free, and it takes no RAM
        above_free = teach.reserve_probe(figures["available"] + (ram_and_swap - figures["available"]) // 2)
        assert above_free["granted"] and above_free["rss_growth"] < 1_000_000, above_free
