"""The catalogue's layer tables: the zoo's models make the calls the tables list, the held-out
set holds many distinct valid layers, and the ordinary layers are valid, named calls."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from autoconv.catalogue import architectures as a
from autoconv.catalogue import ordinary
from autoconv.catalogue.configs import MAMBA_130M
from autoconv.catalogue.held_out import ARCHITECTURES, real_layers
from autoconv.catalogue.workload import Workload
from autoconv.offline.recording import record_model
from autoconv.signature import Signature


@pytest.mark.parametrize("factory,input_shape,layers,exact", [
    ("wav2vec2_base", (1, 1, 16000), partial(a.wav2vec2_base, 1, 1.0), True),
    ("mamba_130m_mixer", (2, 768, 300), partial(a.mamba, 2, 300, MAMBA_130M), True),
    ("hifigan_v1", (1, 80, 8), partial(a.hifigan_v1, 1, 8), False),
    ("encodec_24khz_encoder", (1, 1, 4800), partial(a.encodec_24khz, 1, 0.2), False),
    ("conformer_m_encoder", (1, 256, 50), partial(a.conformer_conv, 1, 50), False),
], ids=["wav2vec2_base", "mamba_130m_mixer", "hifigan_v1", "encodec_24khz_encoder",
        "conformer_m_encoder"])
def test_the_zoo_makes_the_calls_its_table_lists(factory: str, input_shape: tuple,
                                                 layers: Callable[[], a.Layers],
                                                 exact: bool) -> None:
    # one configuration behind both: the model built from it calls what the table says
    recorded = record_model(f"autoconv.catalogue.zoo:{factory}", input_shape)
    # a layer's call is also noted as a layer makes it, its weight reused: right after it
    layers_calls = [s for s in recorded if s.weight_reused]
    recorded = [s for s in recorded if not s.weight_reused]
    assert set(layers_calls) == {dataclasses.replace(s, weight_reused=True) for s in recorded
                                 if s.in_channels}  # every layer's, weight-normed included
    listed = [signature for _, signature in layers()]
    if exact:
        assert recorded == listed
    else:  # the table keeps one of each shape the model repeats, and skips its shortcuts
        assert set(listed) <= set(recorded)


def test_the_held_out_table_holds_valid_distinct_layers_of_many_architectures() -> None:
    table = real_layers()
    signatures = [layer.signature for layer in table]
    assert len(signatures) == len(set(signatures)) >= 200
    assert {layer.architecture for layer in table} == set(ARCHITECTURES)
    assert len(ARCHITECTURES) >= 15
    for s in signatures:
        assert s.output_length >= 1 and s.in_channels % s.groups == 0
    # the families the issue names: depthwise, single-channel front ends, long kernels,
    # grouped, strided
    assert any(s.is_depthwise and s.in_channels >= 768 and s.kernel_size <= 4
               for s in signatures)
    assert any(s.in_channels == 1 and s.out_channels >= 64 and s.kernel_size >= 200
               for s in signatures)
    assert any(s.kernel_size >= 24000 for s in signatures)
    assert any(1 < s.groups < s.in_channels for s in signatures)
    assert real_layers() == table  # the table can be built again (no spent generators)


@pytest.mark.parametrize("workload", ordinary.ORDINARY, ids=lambda w: w.name)
def test_each_ordinary_layer_is_a_valid_call(workload: Workload) -> None:
    assert re.fullmatch(r"[a-z0-9_]+", workload.name) and workload.source
    x = torch.empty(workload.input_shape, device="meta")
    w = torch.empty(workload.weight_shape, device="meta")
    out = F.conv1d(x, w, **workload.conv_kwargs())
    assert tuple(out.shape) == workload.output_shape
    assert Signature.of(x, w, **workload.conv_kwargs()) == workload.signature("meta")


def test_the_ordinary_layers_hold_the_layer_classes_of_the_issue() -> None:
    layers = ordinary.ORDINARY
    assert 18 <= len(layers) == len({w.name for w in layers})
    shapes = {(w.input_shape[1], w.weight_shape[0], w.weight_shape[2], w.stride, w.dilation,
               w.groups) for w in layers}
    assert (1, 512, 10, 5, 1, 1) in shapes  # wav2vec2's first layer
    assert (512, 512, 3, 1, 32, 512) in shapes  # Conv-TasNet, dilated depthwise
    assert (256, 256, 3, 1, 64, 256) in shapes  # a depthwise TCN
    assert (256, 256, 31, 1, 1, 256) in shapes  # Conformer
    assert (384, 384, 3, 2, 1, 1) in shapes  # Whisper tiny's second conv
    assert {k for _, _, k, _, _, g in shapes if g > 1} >= {4, 7, 9, 31}
    quick = ordinary.select(quick=True)
    assert quick and len(quick) < len(layers)
    assert [w.name for w in ordinary.select(["hifigan_k11"])] == ["hifigan_k11"]
    with pytest.raises(KeyError, match="unknown workload 'nope'"):
        ordinary.select(["nope"])


def test_a_layer_is_found_by_name_or_the_names_are_listed() -> None:
    assert a.layer(a.whisper(1, 384), "conv2").stride == 2
    with pytest.raises(KeyError, match="conv1, conv2"):
        a.layer(a.whisper(1, 384), "conv3")


def test_a_workload_of_an_asymmetric_padding_no_call_has_is_refused() -> None:
    same = a.conv(1, 4, 4, 100, 4, padding="same")
    assert Workload.of("even_same", same, description="d", source="s").padding == "same"
    odd = Signature(1, 4, 4, 100, 3, 1, 0, 2, 1, 1, "float32", "cpu")
    with pytest.raises(ValueError, match="no F.conv1d call's"):
        Workload.of("odd", odd, description="d", source="s")
