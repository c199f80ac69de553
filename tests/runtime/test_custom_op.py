"""``autoconv.conv1d`` under ``torch.compile``: one custom op, no graph break, exact gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import autoconv

pytestmark = pytest.mark.usefixtures("fresh_autoconv")


def f64(*shape: int, grad: bool = True) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64, requires_grad=grad)


@pytest.mark.parametrize("kwargs,bias", [
    (dict(padding="same", dilation=3, groups=2), True),  # asymmetric: 4 taps span 10
    (dict(stride=3, padding=5), False),
    (dict(padding="valid"), True),
])
def test_fullgraph_compile_matches_f_conv1d_with_gradients(kwargs: dict, bias: bool) -> None:
    torch.manual_seed(0)
    groups = kwargs.get("groups", 1)
    x, w = f64(2, 4, 90), f64(6, 4 // groups, 4)
    b = f64(6) if bias else None
    leaves = [t for t in (x, w, b) if t is not None]

    def layer(x, w, b):
        return autoconv.conv1d(x, w, b, **kwargs)

    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")  # a break raises
    out, expected = compiled(x, w, b), F.conv1d(x, w, b, **kwargs)
    torch.testing.assert_close(out, expected)
    grads = torch.autograd.grad(out.square().sum(), leaves)
    expected_grads = torch.autograd.grad(expected.square().sum(), leaves)
    for mine, theirs in zip(grads, expected_grads):
        torch.testing.assert_close(mine, theirs)


def test_the_compiled_call_tunes_when_it_runs_not_while_tracing() -> None:
    x, w = torch.randn(2, 1, 3000), torch.randn(1, 1, 300)
    compiled = torch.compile(lambda x, w: autoconv.conv1d(x, w), fullgraph=True,
                             backend="aot_eager")
    torch.testing.assert_close(compiled(x, w), F.conv1d(x, w), rtol=1e-4, atol=1e-4)
    # the compiled call measured it: select only finds the answer in memory (had the call
    # not tuned, select would measure now and say "measured")
    choice = autoconv.select(x, w)
    assert (choice.source, choice.origin) == ("memory", "measured")


def test_the_module_compiles_in_one_graph_under_no_grad() -> None:
    conv = autoconv.Conv1d(3, 5, 65, padding="same").eval()
    x = torch.randn(2, 3, 2000)
    compiled = torch.compile(conv, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), F.conv1d(x, conv.weight, conv.bias,
                                                         padding="same"),
                                   rtol=1e-4, atol=1e-4)


def test_bad_arguments_raise_while_tracing() -> None:
    compiled = torch.compile(lambda x, w: autoconv.conv1d(x, w), fullgraph=True,
                             backend="aot_eager")
    with pytest.raises(RuntimeError, match="to have 6 channels"):
        compiled(torch.randn(1, 4, 50), torch.randn(2, 6, 3))


def test_the_ops_pass_torch_library_opcheck() -> None:
    x, w, b = f64(2, 4, 60), f64(6, 2, 5), f64(6)
    torch.library.opcheck(torch.ops.autoconv.conv1d.default, (x, w, b, 2, 3, 3, 1, 2))
    torch.library.opcheck(torch.ops.autoconv.conv1d.default, (x, w, None, 1, 4, 4, 2, 2))


def test_a_strategy_with_its_own_backward_compiles_with_exact_gradients() -> None:
    """shift_add runs a custom autograd Function inside the custom op (whose body excludes
    autograd) and inside its recomputed backward: values and gradients stay F.conv1d's."""
    from autoconv.signature import Signature

    from .test_live_check import store

    torch.manual_seed(0)
    x, w, b = f64(2, 4, 90), f64(4, 1, 3), f64(4)
    kwargs = dict(padding=8, dilation=8, groups=4)
    store(Signature.of(x, w, b, **kwargs), ("shift_add", 1e-4), ("direct", 1e-3))
    with autoconv.settings.override(mode="predict", recheck_every=0, refresh_s=0):
        assert autoconv.select(x, w, b, **kwargs).strategy == "shift_add"
        compiled = torch.compile(lambda x, w, b: autoconv.conv1d(x, w, b, **kwargs),
                                 fullgraph=True, backend="aot_eager")
        out = compiled(x, w, b)
        grads = torch.autograd.grad(out.square().sum(), [x, w, b])
    expected = F.conv1d(x, w, b, **kwargs)
    torch.testing.assert_close(out, expected)
    for mine, theirs in zip(grads, torch.autograd.grad(expected.square().sum(), [x, w, b])):
        torch.testing.assert_close(mine, theirs)


def test_a_compile_on_another_thread_neither_loops_nor_keeps_an_untuned_answer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """torch's "compiling" flag is one per process: while another thread compiles (a kernel
    prepared in the background, a model compiled beside), this thread's calls read it too.
    They go through the op, whose body runs the eager dispatch (it once called back into
    ``autoconv.conv1d``, round and round), and, measuring being impossible meanwhile, the
    answer they get is not kept: the first call after the compile tunes the call."""
    from autoconv.runtime.dispatch import dispatcher

    x, w, b = f64(2, 4, 90, grad=False), f64(6, 4, 5, grad=False), f64(6, grad=False)
    monkeypatch.setattr(torch.compiler, "_is_compiling_flag", True)  # another thread's
    torch.testing.assert_close(autoconv.conv1d(x, w, b, padding=2), F.conv1d(x, w, b, padding=2))
    assert dispatcher.selector.remembered() == {}  # nothing measured, nothing kept
    monkeypatch.undo()
    torch.testing.assert_close(autoconv.conv1d(x, w, b, padding=2), F.conv1d(x, w, b, padding=2))
    assert [c.source for c in dispatcher.selector.remembered().values()] == ["measured"]
