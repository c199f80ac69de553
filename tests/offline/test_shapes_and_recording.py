"""Shapes files, recording a model's signatures, and sharding a warm list."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import autoconv
from autoconv.offline.recording import record, record_model
from autoconv.offline.shapes_file import ShapesFileError, dump_shapes, load_shapes, parse_shapes
from autoconv.offline.warm import shard, shard_of, unique
from autoconv.signature import Signature


def test_call_entries_become_the_signatures_f_conv1d_would_have(tmp_path: Path) -> None:
    path = tmp_path / "shapes.yaml"
    path.write_text(
        "- input_shape: [4, 64, 4096]\n"
        "  weight_shape: [64, 64, 65]\n"
        "  padding: same\n"
        "- input_shape: [3, 100]\n"
        "  weight_shape: [6, 1, 4]\n"
        "  groups: 3\n"
        "  stride: 2\n"
        "  dtype: float64\n"
        "  requires_grad: true\n")
    first, second = load_shapes(path)
    x, w = torch.empty(4, 64, 4096), torch.empty(64, 64, 65)
    assert first == Signature.of(x, w, padding="same")
    assert (second.batch, second.in_channels, second.out_channels, second.stride,
            second.groups, second.dtype, second.requires_grad) == (1, 3, 6, 2, 3, "float64", True)


def test_saved_signatures_load_back_identically(tmp_path: Path) -> None:
    signatures = [Signature(2, 3, 4, 500, 7, 1, 3, 3, 2, 1, "float32", "cpu", False),
                  Signature(1, 8, 8, 1000, 64, 4, 0, 0, 1, 8, "bfloat16", "cpu", True),
                  Signature(2, 3, 4, 500, 7, 1, 3, 3, 2, 1, "float32", "cpu",
                            weight_reused=True)]
    for name in ("shapes.json", "shapes.yml"):
        dump_shapes(signatures, tmp_path / name)
        assert load_shapes(tmp_path / name) == signatures
        text = (tmp_path / name).read_text()
        assert text.count("weight_reused") == 1  # written for the layer's call alone


def test_a_call_entry_can_say_its_weight_is_reused() -> None:
    entry = {"input_shape": [4, 64, 4096], "weight_shape": [64, 64, 65], "padding": "same"}
    functional, layer = parse_shapes([entry, {**entry, "weight_reused": True}])
    assert not functional.weight_reused and layer.weight_reused
    assert dataclasses.replace(layer, weight_reused=False) == functional


@pytest.mark.parametrize("entry,message", [
    ({"input_shape": [1, 2, 100], "weight_shape": [1, 3, 5]}, "to have 3 channels"),
    ({"input_shape": [1, 1, 10], "weight_shape": [1, 1, 50]}, "Kernel size can.t be greater"),
    ({"input_shape": [1, 1, 10], "weight_shape": [1, 1, 3], "padding": "full"}, "padding"),
    ({"input_shape": [1, 1, 10], "weight_shape": [1, 1, 3], "stride": 0}, "stride"),
    ({"input_shape": [1, 1, 10], "weight_shape": [1, 1, 3], "colour": "red"}, "colour"),
    ({"input_shape": "big", "weight_shape": [1, 1, 3]}, "input_shape"),
    ({"batch": 1}, "in_channels"),
    ("conv", "expected an object"),
])
def test_bad_entries_are_rejected_with_their_index(entry, message: str) -> None:
    with pytest.raises(ShapesFileError, match=message) as error:
        parse_shapes([{"input_shape": [1, 1, 10], "weight_shape": [1, 1, 3]}, entry])
    assert "entry 1" in str(error.value)


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ShapesFileError, match="missing.json"):
        load_shapes(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    with pytest.raises(ShapesFileError, match="broken.json.*not valid"):
        load_shapes(broken)
    hostile = tmp_path / "hostile.yaml"
    marker = tmp_path / "pwned"
    hostile.write_text(f"!!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ShapesFileError, match="hostile.yaml"):
        load_shapes(hostile)
    assert not marker.exists()  # the file's code never ran
    future = tmp_path / "future.json"
    future.write_text(json.dumps({"version": 99, "signatures": []}))
    with pytest.raises(ShapesFileError, match="version 99"):
        load_shapes(future)


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 9, stride=2)
        self.fast = autoconv.Conv1d(4, 4, 33, padding="same", groups=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fast(self.conv(x))
        return F.conv1d(h, torch.ones(1, 4, 3))[..., :-2] + torch.conv1d(h, torch.ones(1, 4, 5))


def make_mixed() -> nn.Module:
    return Mixed()


def test_record_sees_every_kind_of_conv1d_call_and_tunes_nothing() -> None:
    model = Mixed()
    with torch.no_grad(), record() as recording:
        model(torch.randn(2, 1, 1000))
        model(torch.randn(2, 1, 1000))
    kernels = [s.kernel_size for s in recording.signatures]
    # the layers' calls also as a layer makes them, its weight reused; the functional
    # calls' constant weights are no layer's
    assert kernels == [9, 9, 33, 33, 3, 5]
    assert [s.weight_reused for s in recording.signatures] == [False, True] * 2 + [False] * 2
    assert list(recording.counts.values()) == [2] * 6  # each seen once per pass
    assert not any(s.requires_grad for s in recording.signatures)
    assert autoconv.settings.mode == "tune"  # restored


def test_record_notes_a_weight_normed_layer_as_a_layer_but_not_under_autocast() -> None:
    from torch.nn.utils import weight_norm as hooked_weight_norm
    from torch.nn.utils.parametrizations import weight_norm

    model = nn.Sequential(weight_norm(nn.Conv1d(2, 3, 5)),
                          hooked_weight_norm(nn.Conv1d(3, 3, 7)))
    x = torch.randn(1, 2, 100)
    with torch.no_grad(), record() as recording:
        model(x)
    # the old hook computes a new weight on every call: its layer never reuses it
    assert [(s.kernel_size, s.weight_reused) for s in recording.signatures] == [
        (5, False), (5, True), (7, False)]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), record() as recording:
        model(x)
    assert not any(s.weight_reused for s in recording.signatures)


def test_record_model_from_a_factory_spec_in_training_mode() -> None:
    signatures = record_model(f"{__name__}:make_mixed", (2, 1, 800), train=True)
    assert [s.kernel_size for s in signatures] == [9, 33, 3, 5]
    # the layers' weights need gradients, and so does every activation after the first
    # layer: the two functional calls (constant weights) need them too
    assert [s.requires_grad for s in signatures] == [True] * 4
    with pytest.raises(ValueError, match="expected package.module:factory, got 'no_colon'"):
        record_model("no_colon", (1, 1, 10))
    with pytest.raises(ModuleNotFoundError, match="no_such_module_xyz"):
        record_model("no_such_module_xyz:f", (1, 1, 10))


def test_shards_are_disjoint_complete_and_order_independent() -> None:
    signatures = [Signature(1, c, c, 1000 + c, k, 1, 0, 0, 1, 1, "float32", "cpu", False)
                  for c in range(1, 8) for k in (3, 31, 301)]
    parts = [shard(signatures, i, 3) for i in range(3)]
    assert sorted(map(repr, sum(parts, []))) == sorted(map(repr, signatures))
    assert all(set(a).isdisjoint(b) for a in parts for b in parts if a is not b)
    assert shard(list(reversed(signatures)), 1, 3) == list(reversed(parts[1]))
    with pytest.raises(ValueError, match="1..3"):
        shard(signatures, 3, 3)
    assert unique(signatures + signatures) == signatures


def test_a_functional_calls_shard_is_what_it_was_and_a_layers_call_has_its_own() -> None:
    functional = Signature(4, 64, 64, 4096, 65, 1, 32, 32, 1, 1, "float32", "cpu", False)
    # pinned: the hash of the fields' text before signatures had weight_reused
    assert shard_of(functional, 1_000_003) == 148417
    layer = dataclasses.replace(functional, weight_reused=True)
    assert shard_of(layer, 1_000_003) != shard_of(functional, 1_000_003)


def test_a_fifo_or_a_deeply_nested_shapes_file_is_refused_in_one_line(tmp_path) -> None:
    import os

    from autoconv.offline.shapes_file import ShapesFileError, load_shapes

    fifo = tmp_path / "shapes.json"
    os.mkfifo(fifo)  # reading it would block forever
    with pytest.raises(ShapesFileError, match="not a regular file"):
        load_shapes(fifo)
    for name in ("deep.json", "deep.yaml"):
        deep = tmp_path / name
        deep.write_text("[" * 100_000 + "]" * 100_000)
        with pytest.raises(ShapesFileError, match="nested too deeply"):
            load_shapes(deep)
