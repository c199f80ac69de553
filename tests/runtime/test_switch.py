"""autoconv.enable(): every F.conv1d, torch.conv1d and nn.Conv1d through autoconv."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import autoconv
from autoconv.runtime import dispatcher

pytestmark = pytest.mark.usefixtures("fresh_autoconv")
TORCHS_OWN = torch._C._VariableFunctions.conv1d


@pytest.fixture(autouse=True)
def switched_off_afterwards():
    yield
    autoconv.disable()
    assert torch.nn.functional.conv1d is TORCHS_OWN and torch.conv1d is TORCHS_OWN


def tuned_kernels() -> set[int]:
    return {m.signature.kernel_size for _, m in dispatcher.selector.store.db.measurements()}


class MambaMixer(nn.Module):
    """A Mamba-style block's causal depthwise conv, called through F.conv1d on the module's
    weight, as Mamba implementations do: out of ``patch()``'s reach."""

    def __init__(self, channels: int = 16, kernel: int = 4) -> None:
        super().__init__()
        self.conv1d = nn.Conv1d(channels, channels, kernel, groups=channels,
                                padding=kernel - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[-1]
        return F.conv1d(x, self.conv1d.weight, self.conv1d.bias, padding=self.conv1d.padding,
                        groups=self.conv1d.groups)[..., :length]


def test_every_way_of_calling_conv1d_goes_through_autoconv_while_enabled() -> None:
    x = torch.randn(1, 2, 300)
    with autoconv.enabled():
        assert autoconv.is_enabled()
        F.conv1d(x, torch.randn(2, 2, 3))
        torch.conv1d(x, torch.randn(2, 2, 5))
        nn.Conv1d(2, 2, 7)(x)
        torch.nn.functional.conv1d(x, torch.randn(2, 2, 9))
    assert not autoconv.is_enabled()
    assert tuned_kernels() == {3, 5, 7, 9}
    F.conv1d(x, torch.randn(2, 2, 11))  # off again: not tuned
    assert tuned_kernels() == {3, 5, 7, 9}


def test_results_and_gradients_are_f_conv1ds() -> None:
    model = MambaMixer()
    x = torch.randn(2, 16, 500, requires_grad=True)
    expected = model(x)
    expected_grads = torch.autograd.grad(expected.square().sum(), [x, *model.parameters()])
    with autoconv.enabled():
        out = model(x)
        grads = torch.autograd.grad(out.square().sum(), [x, *model.parameters()])
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    for ours, theirs in zip(grads, expected_grads):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert tuned_kernels() == {4}  # the direct F.conv1d call was tuned


def test_blocks_nest_and_restore_the_previous_state_even_on_errors() -> None:
    autoconv.enable()
    with autoconv.enabled(False):
        assert not autoconv.is_enabled() and F.conv1d is TORCHS_OWN
        with autoconv.enabled():
            assert autoconv.is_enabled()
        assert not autoconv.is_enabled()
    assert autoconv.is_enabled()
    with pytest.raises(RuntimeError), autoconv.enabled(False):
        raise RuntimeError("boom")
    assert autoconv.is_enabled()
    autoconv.disable()
    assert not autoconv.is_enabled()


def test_tuning_while_enabled_never_calls_itself_and_recording_still_sees_calls() -> None:
    x, w = torch.randn(2, 3, 4000), torch.randn(3, 3, 1023)
    with autoconv.enabled():
        out = F.conv1d(x, w, padding=511)  # tunes, with references computed by torch itself
        with autoconv.record() as recording:
            F.conv1d(torch.randn(1, 3, 50), w[..., :3])
        assert autoconv.select(x, w, padding=511).source in ("database", "memory")
    # every candidate ran and was checked against torch's own F.conv1d while the switch was
    # on (which of them wins depends on the machine's load: not asserted)
    checked = {m.strategy for _, m in dispatcher.selector.store.db.measurements() if m.ok}
    assert checked - {"direct"}, checked
    torch.testing.assert_close(out, TORCHS_OWN(x, w, None, 1, 511), rtol=1e-4, atol=1e-4)
    assert [s.length for s in recording.signatures] == [50]


def test_errors_are_still_f_conv1ds() -> None:
    x, w = torch.randn(1, 3, 10), torch.randn(2, 2, 3)
    with pytest.raises(RuntimeError) as theirs:
        F.conv1d(x, w)
    with autoconv.enabled(), pytest.raises(RuntimeError) as ours:
        F.conv1d(x, w)
    assert str(ours.value) == str(theirs.value)
