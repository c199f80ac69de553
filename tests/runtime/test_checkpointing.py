"""autoconv inside activation checkpointing (``torch.utils.checkpoint``, non-reentrant):
checkpointing watches every tensor a forward saves through saved-tensor hooks, recomputes the
forward in backward, and stops that recomputation by raising from its hook, inside whatever
strategy is running. A strategy other than ``F.conv1d`` crashed the backward (the exception
was taken for the strategy's failure, and ``F.conv1d`` rerun under the stopped hook), and a
call tuned inside the checkpointed forward showed the tuner's tensors to the hooks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

import autoconv
from autoconv.runtime import dispatcher
from autoconv.signature import Signature
from tests.runtime.test_live_check import store

pytestmark = pytest.mark.usefixtures("fresh_autoconv")


def layer(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    # the conv last: the recomputation is stopped inside it, once it saved its last tensor
    return autoconv.conv1d(x, w, padding=4)


def gradients(forward, x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
    forward(x, w).square().sum().backward()  # reentrant checkpointing refuses autograd.grad
    return x.grad, w.grad


@pytest.mark.parametrize(("recheck_every", "reentrant"), [(0, False), (1, False), (1, True)])
def test_a_stored_decision_other_than_f_conv1d_runs_inside_checkpointing(
        recheck_every: int, reentrant: bool) -> None:
    x, w = torch.randn(2, 8, 300), torch.randn(8, 8, 9)
    with torch.enable_grad():
        signature = Signature.of(x, w.requires_grad_(), None, 1, 4)
    store(dispatcher.selector.key_signature(signature), ("fft", 1e-5), ("direct", 1e-3))
    expected = gradients(lambda a, b: F.conv1d(a, b, padding=4), x, w)
    with autoconv.settings.override(mode="predict", refresh_s=0, recheck_every=recheck_every):
        assert autoconv.select(x, w, padding=4).strategy == "fft"
        for _ in range(3):
            got = gradients(lambda a, b: checkpoint(layer, a, b, use_reentrant=reentrant),
                            x, w)
            for g, e in zip(got, expected, strict=True):
                torch.testing.assert_close(g, e, rtol=1e-3, atol=1e-3)
        assert autoconv.select(x, w, padding=4).strategy == "fft"  # never discarded


def test_a_call_tuned_inside_a_checkpointed_forward_keeps_the_tuner_out_of_its_hooks() -> None:
    packed: list[tuple[int, ...]] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        packed.append(tuple(tensor.shape))
        return tensor

    x, w = torch.randn(2, 8, 300, requires_grad=True), torch.randn(8, 8, 9, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        autoconv.conv1d(x, w, padding=4).sum()  # tunes: every candidate forward and backward
        tuned = list(packed)
        packed.clear()
        autoconv.conv1d(x, w, padding=4).sum()  # decided: the same strategy, nothing tuned
    # whichever strategy won, the hooks saw what its own call saves, none of the tuner's
    assert tuned == packed and packed
    expected = gradients(lambda a, b: F.conv1d(a, b, padding=4), x, w)
    dispatcher.reset()
    got = gradients(lambda a, b: checkpoint(layer, a, b, use_reentrant=False), x, w)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-3, atol=1e-3)


def test_a_decision_that_changes_between_the_forward_and_its_recomputation_is_not_seen(
        ) -> None:
    """A kernel that finishes compiling, or a decision corrected on live calls, between a
    checkpointed forward and its recomputation in backward: the recomputation saves what the
    forward saved (the first answer under the hooks is kept), and the backward succeeds."""
    x, w = torch.randn(2, 8, 300), torch.randn(8, 8, 9)
    with torch.enable_grad():
        signature = Signature.of(x, w.requires_grad_(), None, 1, 4)
    store(dispatcher.selector.key_signature(signature), ("direct", 1e-5), ("fft", 1e-3))
    expected = gradients(lambda a, b: F.conv1d(a, b, padding=4), x, w)
    with autoconv.settings.override(mode="predict", refresh_s=0, recheck_every=0):
        xs, ws = x.detach().requires_grad_(), w.detach().requires_grad_()
        y = checkpoint(layer, xs, ws, use_reentrant=False)
        key = next(k for k in dispatcher._fast if k[0] == x.shape and k[-2])
        fft = autoconv.strategies.get("fft").run
        watch = dispatcher._fast[key][2]
        dispatcher._fast[key] = (fft, fft, watch)  # the decision changes before backward
        y.square().sum().backward()
        for g, e in zip((xs.grad, ws.grad), expected, strict=True):
            torch.testing.assert_close(g, e, rtol=1e-3, atol=1e-3)
        assert dispatcher.runners(xs, ws, None, 1, 4, 1, 1)[0] is fft  # outside: the new one
