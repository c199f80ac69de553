"""``gemm``: a convolution as one matrix multiply over the unfolded input, its memory guard
and the work it declares. Parity, gradients and errors on every argument form are the
registry-wide suites' (``test_parity``, ``test_gradients``, ``test_errors``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from autoconv.strategies import gemm, get
from autoconv.strategies import gemm_conv as module
from autoconv.strategies.gemm_conv import (
                                           computes,
                                           folds_batch,
                                           gemm_work,
                                           row_bytes,
                                           rows_per_chunk,
)

from .helpers import RTOL, assert_close, make_call, reference

#: Calls: batch, groups, input and output channels per group, length, kernel, stride,
#: padding, dilation.
CALLS = [
    (4, 1, 1, 8, 200, 10, 5, 0, 1),  # wav2vec2's first layer: one input channel, strided
    (2, 1, 3, 5, 40, 1, 1, 0, 1),  # pointwise: the input is already the matrix
    (2, 1, 3, 5, 40, 1, 3, 2, 1),  # pointwise with a stride and padding
    (3, 2, 3, 4, 37, 4, 1, "same", 1),  # grouped, asymmetric padding
    (2, 4, 2, 3, 50, 3, 1, 4, 2),  # grouped and dilated
    (None, 1, 4, 6, 30, 7, 2, 3, 1),  # unbatched
    (2, 1, 3, 2, 9, 9, 1, 0, 1),  # one output sample
]


def gemm_call(case: tuple, dtype: torch.dtype = torch.float64, bias: bool = True):
    return make_call(*case, bias=bias, dtype=dtype)


@pytest.fixture(params=["rows", "folded"])
def fold(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each batch row its own multiply, or every row folded into one (as tiny rows are)."""
    monkeypatch.setattr(module, "FOLD_MAX_ROW_MACS", 0 if request.param == "rows" else 10**9)
    return request.param


@pytest.mark.parametrize("case", CALLS, ids=str)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_values_equal_f_conv1d(case: tuple, dtype: torch.dtype, bias: bool, fold: str) -> None:
    call = gemm_call(case, dtype, bias)
    assert computes(call.signature())
    assert folds_batch(call.signature()) == (fold == "folded" and (case[0] or 1) > 1)
    out = gemm(*call.args)
    assert out.is_contiguous() and out.dtype == dtype
    assert_close(out, reference(call), RTOL[dtype], call)


@pytest.mark.parametrize("case", CALLS, ids=str)
def test_gradients_and_second_derivatives(case: tuple, fold: str) -> None:
    call = gemm_call(case)
    tensors = [t.requires_grad_(True) for t in (call.x, call.w, call.b)]
    rest = call.args[3:]

    def fn(x, w, b):
        return gemm(x, w, b, *rest)

    assert torch.autograd.gradcheck(fn, tensors, eps=1e-6, atol=1e-7, rtol=1e-5)
    assert torch.autograd.gradgradcheck(fn, tensors, eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("groups,cin,expected", [
    (1, 1, True),  # one input channel: wav2vec2's first layer
    (1, 64, True),
    (4, 8, True),  # grouped
    (8, 1, False),  # depthwise: the shift-and-add strategies' layers
])
def test_what_it_offers(groups: int, cin: int, expected: bool) -> None:
    call = make_call(2, groups, cin, 2, 100, 3, dtype=torch.float32)
    assert computes(call.signature()) is expected
    assert get("gemm").supports(call.signature()) is expected


def test_complex_calls_get_f_conv1d_s_answer() -> None:
    call = make_call(2, 1, 3, 4, 30, 3, dtype=torch.complex64)
    assert not computes(call.signature())
    torch.testing.assert_close(gemm(*call.args), reference(call))


def test_a_depthwise_call_gets_f_conv1d_s_answer() -> None:
    call = make_call(2, 4, 1, 1, 30, 3, padding=1)
    torch.testing.assert_close(gemm(*call.args), reference(call), rtol=0, atol=0)


def test_the_guard_multiplies_batch_rows_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    call = gemm_call((5, 1, 3, 4, 60, 5, 2, 3, 1))
    signature = call.signature()
    monkeypatch.setattr(module, "MAX_UNFOLDED_BYTES", 2 * row_bytes(signature))
    monkeypatch.setattr(module, "FOLD_MAX_ROW_MACS", 0)  # one multiply per row
    assert rows_per_chunk(signature) == 2
    multiplies = []
    real_matmul = torch.matmul
    monkeypatch.setattr(module.torch, "matmul",
                        lambda *a: multiplies.append(a[1].shape[0]) or real_matmul(*a))
    leaves = [t.requires_grad_(True) for t in (call.x, call.w, call.b)]
    out = gemm(*call.args)
    assert multiplies == [2, 2, 1]
    assert_close(out, reference(call), RTOL[torch.float64], call)
    grad = torch.randn_like(out)
    mine = torch.autograd.grad(out, leaves, grad)
    theirs = torch.autograd.grad(F.conv1d(*call.args), leaves, grad)
    for a, b in zip(mine, theirs):
        torch.testing.assert_close(a, b)


def test_the_guard_refuses_a_row_over_it(monkeypatch: pytest.MonkeyPatch) -> None:
    call = gemm_call((2, 1, 3, 4, 60, 5, 1, 0, 1))
    monkeypatch.setattr(module, "MAX_UNFOLDED_BYTES", row_bytes(call.signature()) - 1)
    assert not computes(call.signature())
    torch.testing.assert_close(gemm(*call.args), reference(call), rtol=0, atol=0)


def test_a_pointwise_layer_copies_nothing_and_is_not_limited(
        monkeypatch: pytest.MonkeyPatch) -> None:
    call = gemm_call((3, 1, 4, 2, 50, 1, 1, 0, 1))
    monkeypatch.setattr(module, "MAX_UNFOLDED_BYTES", 1)
    monkeypatch.setattr(module, "FOLD_MAX_ROW_MACS", 0)  # folding rows copies them
    assert computes(call.signature()) and rows_per_chunk(call.signature()) == 3
    assert_close(gemm(*call.args), reference(call), RTOL[torch.float64], call)


@pytest.mark.parametrize("needs_grad", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_a_pointwise_layer_multiplies_the_input_itself(needs_grad: bool, bias: bool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Without copying a tap, on any layout of the weight and the input; with gradients
    (``baddbmm`` from the bias) equal to ``F.conv1d``'s."""
    monkeypatch.setattr(module, "FOLD_MAX_ROW_MACS", 0)
    call = gemm_call((3, 1, 4, 5, 30, 1, 1, 0, 1), bias=bias)
    x = call.x.transpose(1, 2).contiguous().transpose(1, 2).requires_grad_(needs_grad)
    w = call.w.transpose(0, 1).contiguous().transpose(0, 1).requires_grad_(needs_grad)
    assert not x.is_contiguous() and not w.is_contiguous()
    out = gemm(x, w, call.b, *call.args[3:])
    assert out.is_contiguous()
    assert_close(out, reference(call), RTOL[torch.float64], call)
    if needs_grad:
        grads = torch.autograd.grad(out, (x, w), torch.ones_like(out))
        leaves = [t.detach().requires_grad_(True) for t in (call.x, call.w)]
        ref = F.conv1d(leaves[0], leaves[1], call.b, *call.args[3:])
        for mine, theirs in zip(grads, torch.autograd.grad(ref, leaves, torch.ones_like(ref))):
            torch.testing.assert_close(mine, theirs)


def test_tiny_rows_are_folded_into_one_multiply(monkeypatch: pytest.MonkeyPatch) -> None:
    call = gemm_call((6, 2, 2, 2, 20, 4, 1, 1, 1))  # grouped, padded: 6 rows of 608 MACs
    assert folds_batch(call.signature())
    multiplies = []
    real_matmul = torch.matmul
    monkeypatch.setattr(module.torch, "matmul",
                        lambda *a: multiplies.append(tuple(a[1].shape)) or real_matmul(*a))
    out = gemm(*call.args)
    assert multiplies == [(2, 8, 6 * 19)]  # per group: 2 channels x 4 taps, every row's outputs
    assert out.is_contiguous()
    assert_close(out, reference(call), RTOL[torch.float64], call)
    assert not folds_batch(gemm_call((1, 2, 2, 2, 20, 4, 1, 1, 1)).signature())  # one row
    assert not folds_batch(gemm_call((6, 1, 64, 64, 100, 3, 1, 1, 1)).signature())  # large


def test_work_counts_the_output_and_the_copy_only_where_the_multiply_makes_one() -> None:
    pointwise = make_call(2, 1, 16, 8, 100, 1, dtype=torch.float32).signature()
    strided = make_call(2, 1, 16, 8, 200, 1, stride=2, dtype=torch.float32).signature()
    taps = make_call(2, 1, 16, 8, 100, 3, dtype=torch.float32).signature()
    folded = make_call(2, 1, 8, 4, 100, 1, dtype=torch.float32).signature()
    assert not any(folds_batch(s) for s in (pointwise, strided, taps)) and folds_batch(folded)
    assert gemm_work(pointwise, {})["bytes_moved"] == 2 * 8 * 100 * 4  # the output alone
    assert gemm_work(strided, {})["bytes_moved"] == (2 * 2 * 16 * 100 + 2 * 8 * 100) * 4
    assert gemm_work(taps, {})["bytes_moved"] == (2 * 2 * 16 * 3 * 98 + 2 * 8 * 98) * 4
    assert gemm_work(taps, {})["matmul_macs"] == 2 * 8 * 16 * 3 * 98
    # folded rows: the input copied into the folded matrix, the product copied once more
    assert gemm_work(folded, {})["bytes_moved"] == (2 * 2 * 8 * 100 + 3 * 2 * 4 * 100) * 4


class _LargestTensor(TorchDispatchMode):
    """Records the most elements any operator's output had."""

    def __init__(self) -> None:
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.numel = max(self.numel, t.numel())
        return out


def test_a_dilated_backward_stays_the_size_of_the_taps() -> None:
    """Through an ``unfold`` spanning every dilated window, the input's gradient took a
    tensor of ``span`` samples per output (a grid layer of dilation 323: 30x ``F.conv1d``)."""
    call = gemm_call((2, 1, 4, 3, 700, 3, 1, 0, 300), dtype=torch.float32)
    signature = call.signature()
    x = call.x.requires_grad_(True)
    out = gemm(x, *call.args[1:])
    with _LargestTensor() as largest:
        out.backward(torch.ones_like(out))
    rows = signature.batch * signature.in_channels
    bound = max(rows * signature.kernel_size * signature.output_length,  # the taps
                rows * signature.length)  # the input's gradient
    assert largest.numel <= bound < rows * signature.span * signature.output_length / 10
    leaf = call.x.detach().requires_grad_(True)
    F.conv1d(leaf, *call.args[1:]).sum().backward()
    torch.testing.assert_close(x.grad, leaf.grad)


def test_a_row_over_the_guard_is_refused_before_anything_is_allocated() -> None:
    """wav2vec2's positional conv at 10 s: 768 channels x 128 taps x 500 frames in float32
    (196 MB a row, over the default guard) is answered by ``F.conv1d``, and no tensor of the
    unfolded matrix's size is ever made."""
    call = make_call(1, 16, 48, 48, 499, 128, padding=64, dtype=torch.float32)
    signature = call.signature()
    assert row_bytes(signature) == 768 * 128 * 500 * 4 > module.MAX_UNFOLDED_BYTES
    assert not computes(signature)
    with _LargestTensor() as largest:
        out = gemm(*call.args)
    assert largest.numel < row_bytes(signature) / 4 / 100
    torch.testing.assert_close(out, reference(call), rtol=0, atol=0)
