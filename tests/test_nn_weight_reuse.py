"""autoconv.Conv1d reuses a parametrized weight in inference, and tells the dispatcher which
weights are reused (``weight_reused``): outputs always those of torch's own modules."""

from __future__ import annotations

import copy
import io
import pickle
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize

import autoconv
import autoconv.nn as autoconv_nn

pytestmark = pytest.mark.usefixtures("fresh_autoconv")

WeightNorm = parametrizations._WeightNorm
SpectralNorm = parametrizations._SpectralNorm

INFERENCE: dict[str, Callable[[], AbstractContextManager]] = {
    "no_grad": torch.no_grad, "inference_mode": torch.inference_mode}


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """How many times each weight norm and spectral norm parametrization ran, by module id
    (their classes' ``forward`` wrapped: the classes stay the ones autoconv knows)."""
    counts: Counter = Counter()
    for kind in (WeightNorm, SpectralNorm):
        def counting(self, *args, _real=kind.forward):
            counts[id(self)] += 1
            return _real(self, *args)

        monkeypatch.setattr(kind, "forward", counting)
    return counts


@pytest.fixture
def told(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The ``weight_reused`` each autoconv.Conv1d call passed to the dispatcher."""
    seen: list[bool] = []
    real = autoconv_nn.conv1d_cached

    def recording(*args, weight_reused: bool = False, **kwargs):
        seen.append(weight_reused)
        return real(*args, weight_reused=weight_reused, **kwargs)

    monkeypatch.setattr(autoconv_nn, "conv1d_cached", recording)
    return seen


def positional(seed: int = 0) -> nn.Module:
    """wav2vec2's positional convolution (weight norm over the kernel dimension, grouped),
    narrowed (768 -> 8 channels, 128 -> 16 taps), in float64."""
    torch.manual_seed(seed)
    conv = nn.Conv1d(8, 8, 16, padding=8, groups=4, dtype=torch.float64)
    return parametrizations.weight_norm(conv, name="weight", dim=2)


def patched_pair(build: Callable[[], nn.Module]) -> tuple[nn.Module, nn.Module]:
    """(a module patched, the same module unpatched)."""
    reference = build()
    return autoconv.patch(copy.deepcopy(reference)), reference


def signal(channels: int = 8, length: int = 300) -> torch.Tensor:
    return torch.randn(2, channels, length, dtype=torch.float64)


def stack(conv: nn.Module) -> nn.Module:
    return conv.parametrizations.weight


@pytest.mark.parametrize("mode", list(INFERENCE))
def test_weight_norm_runs_once_in_inference_until_an_original_changes(
        mode: str, runs: Counter, told: list[bool]) -> None:
    ours, theirs = patched_pair(positional)
    norm, x = stack(ours)[0], signal()
    with INFERENCE[mode]():
        for _ in range(3):
            torch.testing.assert_close(ours(x), theirs(x))
        assert runs[id(norm)] == 1 and runs[id(stack(theirs)[0])] == 3
        weight, reused = ours._weight_for_call()
        assert reused and weight is ours._weight_for_call()[0]
        assert not weight.is_inference() and not weight.requires_grad
        torch.testing.assert_close(weight, theirs.weight)
    assert told == [True] * 3
    for name in ("original1", "original0"):  # direction v, then magnitude g
        with torch.no_grad():
            getattr(stack(ours), name).mul_(2)
            getattr(stack(theirs), name).mul_(2)
        with INFERENCE[mode]():
            torch.testing.assert_close(ours(x), theirs(x))
            torch.testing.assert_close(ours(x), theirs(x))
    assert runs[id(norm)] == 3  # once again after each change, not on the call after it


def test_a_reused_weights_spectrum_is_reused_too() -> None:
    # a long filter over a long signal: FFT territory, as wav2vec2's positional conv is
    torch.manual_seed(3)
    reference = parametrizations.weight_norm(nn.Conv1d(1, 1, 1025, padding=512), dim=2)
    ours = autoconv.patch(copy.deepcopy(reference))
    x = torch.randn(4, 1, 16000)
    with autoconv.settings.override(mode="predict"):
        for mode in INFERENCE.values():
            with mode():
                assert autoconv.select(x, reference.weight, padding=512).strategy != "direct"
                torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-3)
                cache = ours._spectrum_cache
                before = (cache.hits, cache.misses)
                for _ in range(3):  # (a live sample may run a call without the cache)
                    torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-3)
                assert cache.misses == before[1] and cache.hits >= before[0] + 2


class Counting(nn.Module):
    """A user's parametrization (not known to be pure): counts its runs."""

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        self.runs += 1
        return weight * 0.5


def test_a_parametrization_not_known_to_be_pure_runs_on_every_call(told: list[bool]) -> None:
    def build() -> nn.Module:
        torch.manual_seed(4)
        conv = nn.Conv1d(8, 8, 5, padding=2, dtype=torch.float64)
        return parametrize.register_parametrization(conv, "weight", Counting())

    ours, theirs = patched_pair(build)
    x = signal()
    stack(ours)[0].runs = 0  # (registering ran it once)
    with torch.no_grad():
        for _ in range(3):
            torch.testing.assert_close(ours(x), theirs(x))
        assert ours._weight_for_call()[1] is False
    assert stack(ours)[0].runs == 4 and told == [False] * 3
    # one known to be pure after it does not make the stack pure
    parametrizations.spectral_norm(ours).eval()
    before = stack(ours)[0].runs
    with torch.no_grad():
        ours(x), ours(x)
    assert stack(ours)[0].runs == before + 2 and told[-2:] == [False, False]


def test_with_gradients_the_weight_is_computed_on_every_call_and_gradients_match(
        runs: Counter, told: list[bool]) -> None:
    ours, theirs = patched_pair(positional)
    x = signal()
    for model in (ours, theirs):
        model(x).square().sum().backward()
        model(x).square().sum().backward()
    assert runs[id(stack(ours)[0])] == 2 and told == [False, False]
    assert ours._reused_weight.entry is None
    for name in ("original0", "original1"):
        torch.testing.assert_close(getattr(stack(ours), name).grad,
                                   getattr(stack(theirs), name).grad)
    torch.testing.assert_close(ours.bias.grad, theirs.bias.grad)


def test_frozen_originals_are_reused_with_grad_mode_on(runs: Counter) -> None:
    ours, theirs = patched_pair(positional)
    for model in (ours, theirs):
        model.requires_grad_(False)
    x = signal().requires_grad_()
    for _ in range(2):
        torch.testing.assert_close(ours(x), theirs(x))
    assert runs[id(stack(ours)[0])] == 1
    (ours_grad,) = torch.autograd.grad(ours(x).sum(), x)
    (theirs_grad,) = torch.autograd.grad(theirs(x).sum(), x)
    torch.testing.assert_close(ours_grad, theirs_grad)
    stack(ours).original1.requires_grad_(True)  # one original trained again: computed anew
    assert ours._weight_for_call()[1] is False and ours._reused_weight.entry is None


def spectral(seed: int = 5) -> nn.Module:
    torch.manual_seed(seed)
    return parametrizations.spectral_norm(nn.Conv1d(8, 8, 5, padding=2, dtype=torch.float64))


def test_spectral_norm_is_reused_in_eval_mode_only(runs: Counter, told: list[bool]) -> None:
    ours, theirs = patched_pair(spectral)
    norm, x = stack(ours)[0], signal()
    with torch.no_grad():  # training mode: the power iteration runs (and updates u, v) each call
        for _ in range(3):
            torch.testing.assert_close(ours(x), theirs(x))
        assert runs[id(norm)] == 3 and told == [False] * 3
        torch.testing.assert_close(norm._u, stack(theirs)[0]._u)
        torch.testing.assert_close(norm._v, stack(theirs)[0]._v)
        ours.eval(), theirs.eval()
        for _ in range(3):
            torch.testing.assert_close(ours(x), theirs(x))
        assert runs[id(norm)] == 4 and told[3:] == [True] * 3
        ours.train(), theirs.train()  # back to training: computed (and iterated) again
        torch.testing.assert_close(ours(x), theirs(x))
        assert runs[id(norm)] == 5 and told[-1] is False
        torch.testing.assert_close(norm._u, stack(theirs)[0]._u)
        ours.eval(), theirs.eval()
        torch.testing.assert_close(ours(x), theirs(x))  # with the updated u, v
        assert runs[id(norm)] == 6


@pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning")
def test_the_old_weight_norm_hook_is_computed_on_every_call(told: list[bool]) -> None:
    def build() -> nn.Module:  # twice the same (deepcopy refuses the hook once it has run)
        torch.manual_seed(6)
        return nn.utils.weight_norm(nn.Conv1d(8, 8, 5, padding=2, dtype=torch.float64))

    ours, theirs = autoconv.patch(build()), build()
    x = signal()
    with torch.no_grad():
        for _ in range(2):
            torch.testing.assert_close(ours(x), theirs(x))
        ours.weight_v.mul_(2), theirs.weight_v.mul_(2)
        torch.testing.assert_close(ours(x), theirs(x))
        assert ours._weight_for_call() == (ours.weight, False)
    assert told == [False] * 3


def test_a_plain_layers_own_parameter_is_reused(told: list[bool]) -> None:
    class Halved(autoconv.Conv1d):
        """A subclass passing a weight of its own (reused: no) or the layer's (yes)."""

        def forward(self, input: torch.Tensor) -> torch.Tensor:
            half = self._conv_forward(input, self.weight / 2, self.bias)
            return half + self._conv_forward(input, self.weight, self.bias)

    conv = autoconv.Conv1d(8, 8, 5, dtype=torch.float64)
    weight, reused = conv._weight_for_call()
    assert weight is conv.weight and reused
    with torch.no_grad():
        conv(signal())
    assert told == [True]
    told.clear()
    halved = Halved(8, 8, 5, dtype=torch.float64)
    reference = nn.Conv1d(8, 8, 5, dtype=torch.float64)
    reference.load_state_dict(halved.state_dict())
    x = signal()
    with torch.no_grad():
        expected = nn.functional.conv1d(x, reference.weight / 2, reference.bias) + reference(x)
        torch.testing.assert_close(halved(x), expected)
    assert told == [False, True]


def test_hooks_and_torchs_own_cache_keep_the_parametrization_running(runs: Counter) -> None:
    ours, theirs = patched_pair(positional)
    norm, x = stack(ours)[0], signal()
    seen: list[int] = []
    with torch.no_grad():
        handle = norm.register_forward_hook(lambda module, args, output: seen.append(1))
        torch.testing.assert_close(ours(x), theirs(x))
        ours(x)
        assert seen == [1, 1]
        handle.remove()
        handle = nn.modules.module.register_module_forward_pre_hook(
            lambda module, args: seen.append(2) if module is norm else None)
        try:
            ours(x), ours(x)
        finally:
            handle.remove()
        assert seen == [1, 1, 2, 2]
        with parametrize.cached():
            torch.testing.assert_close(ours(x), theirs(x))
            ours(x)
            assert ours._weight_for_call()[1] is False
        assert runs[id(norm)] == 5  # twice each way, and once for both calls in cached()
        ours(x), ours(x)
        assert runs[id(norm)] == 6


def test_what_the_weight_is_computed_from_is_checked(runs: Counter) -> None:
    ours, theirs = patched_pair(positional)
    norm, x = stack(ours)[0], signal()

    def check(expected_runs: int) -> None:
        with torch.no_grad():
            torch.testing.assert_close(ours(x), theirs(x))
            torch.testing.assert_close(ours(x), theirs(x))
        assert runs[id(norm)] == expected_runs

    check(1)
    state = {k: v + 1 for k, v in theirs.state_dict().items()}
    ours.load_state_dict(state), theirs.load_state_dict(state)
    check(2)
    ours.weight = theirs.weight = theirs.weight.detach() * 3  # right_inverse sets the originals
    check(3)
    for model in (ours, theirs):
        stack(model).original1 = nn.Parameter(stack(model).original1.detach().flip(-1))
    check(4)
    with torch.no_grad():  # a new value by .data (no version bump)
        for model in (ours, theirs):
            stack(model).original0.data = stack(model).original0.data * 1.5
    check(5)
    ours.float(), theirs.float()
    x = x.float()
    check(6)
    with torch.no_grad():  # functional_call swaps the originals for the call only
        swapped = {"parametrizations.weight.original1":
                   torch.randn_like(stack(ours).original1)}
        torch.testing.assert_close(torch.func.functional_call(ours, swapped, (x,)),
                                   torch.func.functional_call(theirs, swapped, (x,)))
    check(8)


def test_copies_pickles_and_state_dicts_leave_the_reused_weight_out() -> None:
    ours, theirs = patched_pair(positional)
    x = signal()
    with torch.no_grad():
        ours(x)
    assert ours._reused_weight.entry is not None
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for clone in (copy.deepcopy(ours), copy.copy(ours)):
        assert isinstance(clone, autoconv.Conv1d) and clone._reused_weight.entry is None
        with torch.no_grad():
            torch.testing.assert_close(clone(x), theirs(x))
    replica = ours._replicate_for_data_parallel()  # what nn.DataParallel makes
    assert replica._reused_weight is not ours._reused_weight
    assert replica._spectrum_cache is not ours._spectrum_cache
    clone = copy.deepcopy(ours)
    with torch.no_grad():
        stack(clone).original1.mul_(2)  # the copy's originals are its own
        torch.testing.assert_close(ours(x), theirs(x))
    # a parametrized module pickles as torch's does (it refuses); a plain layer pickles as
    # nn.Conv1d, with nothing derived in it
    with pytest.raises(RuntimeError) as ours_error:
        pickle.dumps(ours)
    with pytest.raises(RuntimeError) as theirs_error:
        pickle.dumps(theirs)
    assert str(ours_error.value) == str(theirs_error.value)
    model = autoconv.patch(nn.Sequential(nn.Conv1d(8, 8, 5, dtype=torch.float64), nn.ReLU()))
    with torch.no_grad():
        expected = model(x)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert type(loaded[0]) is nn.Conv1d
    assert not {"_reused_weight", "_spectrum_cache"} & set(vars(loaded[0]))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected)
    autoconv.unpatch(ours)
    assert not {"_reused_weight", "_spectrum_cache"} & set(vars(ours))


def model_of(build: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    return lambda: nn.Sequential(build(), nn.GELU())


def test_jit_trace_computes_the_weight_in_the_graph() -> None:
    ours, theirs = patched_pair(model_of(positional))
    x = signal()
    with torch.no_grad():
        ours(x)  # a weight to reuse exists: the trace must not take it as a constant
        traced = torch.jit.trace(ours, x, check_trace=False)
        torch.testing.assert_close(traced(x), theirs(x))
        stack(ours[0]).original1.mul_(2), stack(theirs[0]).original1.mul_(2)
        torch.testing.assert_close(traced(x), theirs(x))
        torch.testing.assert_close(ours(x), theirs(x))


def test_jit_script_of_patched_models_does_what_torch_does() -> None:
    ours, theirs = patched_pair(model_of(positional))
    x = signal()
    with torch.no_grad():
        ours(x)
    with pytest.raises(Exception) as ours_error:  # torch refuses parametrized modules
        torch.jit.script(ours)(x)
    with pytest.raises(Exception) as theirs_error:
        torch.jit.script(theirs)(x)
    assert (str(ours_error.value).strip().splitlines()[-1]
            == str(theirs_error.value).strip().splitlines()[-1])
    ours, theirs = patched_pair(model_of(lambda: nn.Conv1d(8, 8, 5, dtype=torch.float64)))
    with torch.no_grad():
        ours(x)
        scripted = torch.jit.script(ours)
        assert [n.kind() for n in scripted.inlined_graph.nodes()].count("aten::conv1d") == 1
        torch.testing.assert_close(scripted(x), theirs(x))
        torch.testing.assert_close(torch.jit.script(autoconv.Conv1d(8, 8, 5))(x.float()).shape,
                                   torch.Size([2, 8, 296]))


@pytest.fixture
def fresh_dynamo() -> Iterator[None]:
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.usefixtures("fresh_dynamo")
def test_torch_compile_and_export_compute_the_weight_in_the_graph() -> None:
    ours, theirs = patched_pair(model_of(positional))
    x = signal()
    with torch.no_grad():
        ours(x)  # a weight to reuse exists: the graph must not take it
        compiled = torch.compile(ours, backend="aot_eager")
        torch.testing.assert_close(compiled(x), theirs(x))
        stack(ours[0]).original1.mul_(2), stack(theirs[0]).original1.mul_(2)
        torch.testing.assert_close(compiled(x), theirs(x))
        torch.testing.assert_close(ours(x), theirs(x))
    program = torch.export.export(ours, (x,))
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert any("weight_norm" in target for target in targets), targets
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), theirs(x))
