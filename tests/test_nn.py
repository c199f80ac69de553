"""autoconv.Conv1d and autoconv.patch on real model shapes: parity with torch's own modules."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

import autoconv

pytestmark = pytest.mark.usefixtures("fresh_autoconv")


class FeatureEncoder(nn.Module):
    """wav2vec2's convolutional feature encoder, narrowed (512 -> 32 channels) for speed."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        kernels, strides = (10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2)
        layers: list[nn.Module] = []
        in_channels = 1
        for index, (kernel, stride) in enumerate(zip(kernels, strides)):
            layers.append(nn.Conv1d(in_channels, width, kernel, stride, bias=False))
            if index == 0:
                layers.append(nn.GroupNorm(width, width))
            layers.append(nn.GELU())
            in_channels = width
        self.layers = nn.Sequential(*layers)
        self.positional = nn.Conv1d(width, width, 128, padding=64, groups=16)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        features = self.layers(audio)
        return features + self.positional(features)[..., :-1]


class TCN(nn.Module):
    """A WaveNet-style stack of causal dilated convolutions with residuals."""

    def __init__(self, channels: int = 8, kernel: int = 3, levels: int = 6) -> None:
        super().__init__()
        self.inp = nn.Conv1d(1, channels, 1)
        self.blocks = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, dilation=2**i, padding=(kernel - 1) * 2**i)
            for i in range(levels))
        self.out = nn.Conv1d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + torch.tanh(block(h)[..., : h.shape[-1]])
        return self.out(h)


@pytest.mark.parametrize("factory,length", [(FeatureEncoder, 4000), (TCN, 3000)])
def test_patched_model_matches_the_original(factory, length: int) -> None:
    torch.manual_seed(0)
    model = factory().double()
    reference = copy.deepcopy(model)
    x = torch.randn(2, 1, length, dtype=torch.float64)
    patched = autoconv.patch(model)
    assert patched is model
    # every conv replaced (8 in each model), and none lost on the way
    convs = sum(isinstance(m, nn.Conv1d) for m in reference.modules())
    assert convs == 8
    assert [type(m) for m in model.modules() if isinstance(m, nn.Conv1d)] == [
        autoconv.Conv1d] * convs
    torch.testing.assert_close(model(x), reference(x))
    # and training: gradients match too
    model(x).square().mean().backward()
    reference(x).square().mean().backward()
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours.grad, theirs.grad)


def test_patch_shares_parameters_and_keeps_hooks() -> None:
    model = nn.Sequential(nn.Conv1d(2, 2, 3), nn.ReLU())
    weight = model[0].weight
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen: list[int] = []
    model[0].register_forward_hook(lambda module, args, output: seen.append(1))
    autoconv.patch(model)
    assert type(model[0]) is autoconv.Conv1d
    assert model[0].weight is weight
    before = weight.detach().clone()
    model(torch.randn(1, 2, 20)).sum().backward()
    optimizer.step()  # built before the patch: it must still update the module's weight
    assert seen == [1]
    assert model[0].weight is weight and weight.grad is not None
    torch.testing.assert_close(model[0].weight.detach(), before - 0.1 * weight.grad)


def test_patch_leaves_subclasses_alone() -> None:
    class Custom(nn.Conv1d):
        pass

    model = nn.Sequential(Custom(1, 1, 3))
    autoconv.patch(model)
    assert type(model[0]) is Custom


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv1d_module_matches_nn_conv1d_for_every_padding_mode(padding_mode: str) -> None:
    torch.manual_seed(1)
    theirs = nn.Conv1d(3, 4, 33, padding=16, padding_mode=padding_mode, dtype=torch.float64)
    ours = autoconv.Conv1d(3, 4, 33, padding=16, padding_mode=padding_mode, dtype=torch.float64)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 500, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x))


def test_state_dicts_are_interchangeable() -> None:
    ours = autoconv.Conv1d(4, 6, 5, stride=2, groups=2)
    theirs = nn.Conv1d(4, 6, 5, stride=2, groups=2)
    theirs.load_state_dict(ours.state_dict())
    ours.load_state_dict(theirs.state_dict())
    assert ours.state_dict().keys() == theirs.state_dict().keys()


def test_weight_spectrum_is_reused_until_the_weight_changes() -> None:
    conv = autoconv.Conv1d(1, 1, 1025, padding=512)
    x = torch.randn(4, 1, 16000)
    with autoconv.settings.override(mode="predict"), torch.no_grad():
        # 1025 taps over 16,000 samples: no cost model picks direct (about 300x the FFT work)
        assert autoconv.select(x, conv.weight, padding=512).strategy != "direct"
        first = conv(x)
        conv(x)
        cache = conv._spectrum_cache
        assert (cache.hits, cache.misses) == (1, 1)  # transformed once, then reused
        conv.weight.mul_(2)  # an in-place update, as optimizer.step() does
        torch.testing.assert_close(conv(x), 2 * first, rtol=1e-4, atol=1e-3)
        assert (cache.hits, cache.misses) == (1, 2)  # the stale spectrum was not used


def test_module_pickles_and_deep_copies() -> None:
    conv = autoconv.Conv1d(2, 2, 65)
    x = torch.randn(1, 2, 400)
    with torch.no_grad():
        conv(x)
    buffer = io.BytesIO()
    torch.save(conv, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert type(loaded) is nn.Conv1d  # pickled as torch's layer: loads without autoconv
    clone = copy.deepcopy(conv)
    assert type(clone) is autoconv.Conv1d  # a copy in the process stays ours
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), conv(x))
        torch.testing.assert_close(clone(x), conv(x))


def test_torch_compile_of_a_patched_model() -> None:
    torch.manual_seed(2)
    model = TCN(channels=4, levels=3)
    reference = copy.deepcopy(model)
    autoconv.patch(model)
    compiled = torch.compile(model, backend="aot_eager")
    x = torch.randn(2, 1, 500)
    torch.testing.assert_close(compiled(x), reference(x), rtol=1e-4, atol=1e-4)


class Symmetric(nn.Module):
    """A user parametrization: the kernel made symmetric (a linear-phase filter)."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return (weight + weight.flip(-1)) / 2


PARAMETRIZE = {
    "weight_norm": lambda conv: nn.utils.parametrizations.weight_norm(conv),
    "spectral_norm": lambda conv: nn.utils.parametrizations.spectral_norm(conv),
    "user parametrization": lambda conv: nn.utils.parametrize.register_parametrization(
        conv, "weight", Symmetric()),
    "old weight_norm hook": lambda conv: nn.utils.weight_norm(conv),
}


@pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning")
@pytest.mark.parametrize("name", list(PARAMETRIZE))
def test_parametrized_convolutions_are_converted_and_keep_working(name: str) -> None:
    def build() -> nn.Module:  # twice the same (deepcopy refuses the old weight_norm hook)
        torch.manual_seed(0)
        return nn.Sequential(PARAMETRIZE[name](nn.Conv1d(4, 6, 65, padding=32)), nn.GELU())

    reference, model = build(), build()
    keys, parameters = list(model.state_dict()), [id(p) for p in model.parameters()]
    autoconv.patch(model)
    conv = model[0]
    assert isinstance(conv, autoconv.Conv1d)
    assert list(model.state_dict()) == keys and [id(p) for p in model.parameters()] == parameters
    x = torch.randn(2, 4, 700)
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (reference, model)]
    for _ in range(2):  # train a step, so the parametrized weight changes under both
        for m, optimizer in zip((reference, model), optimizers):
            optimizer.zero_grad()
            m(x).square().mean().backward()
            optimizer.step()
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    model.eval(), reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-5)
        first = next(model.parameters())
        first.mul_(1.5)  # an in-place change of what the weight is computed from
        next(reference.parameters()).mul_(1.5)
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-5)
    try:  # whatever torch's own module does when deep-copied, ours does too
        copy.deepcopy(reference)
    except RuntimeError:  # the old weight_norm hook, once it has run: torch refuses
        with pytest.raises(RuntimeError, match="deepcopy"):
            copy.deepcopy(model)
    else:
        copy.deepcopy(model)
    autoconv.unpatch(model)
    assert type(conv) is type(reference[0]) or (type(conv).__bases__ == (nn.Conv1d,)
                                               and type(conv).__name__ == "ParametrizedConv1d")
    assert not isinstance(conv, autoconv.Conv1d) and list(model.state_dict()) == keys


def test_convert_refuses_other_subclasses_and_revert_refuses_plain_modules() -> None:
    class Custom(nn.Conv1d):
        pass

    with pytest.raises(TypeError, match="can only convert torch.nn.modules.conv.Conv1d"):
        autoconv.Conv1d.convert(Custom(2, 2, 3))
    with pytest.raises(TypeError, match="can only convert autoconv.nn.Conv1d"):
        autoconv.nn.revert(nn.Conv1d(2, 2, 3))
