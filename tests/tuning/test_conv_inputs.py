"""ConvInputs: candidates are timed on the call as F.conv1d receives it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autoconv.signature import Signature
from autoconv.tuning.candidates import ConvInputs


def _signature(left: int, right: int, kernel: int = 8) -> Signature:
    return Signature(2, 3, 4, 50, kernel, 1, left, right, 1, 1, "float32", "cpu")


def test_same_padding_with_an_even_kernel_reaches_f_conv1d_as_same() -> None:
    inputs = ConvInputs.random(_signature(3, 4), torch.device("cpu"))
    seen = []

    def spy(x, w, b, stride, padding, dilation, groups):
        seen.append((x.shape[-1], padding))
        return F.conv1d(x, w, b, stride, padding, dilation, groups)

    output = inputs.run(spy)
    assert seen == [(50, "same")]  # not padded beforehand: F.conv1d pads as it does
    expected = F.conv1d(inputs.input, inputs.weight, inputs.bias, padding="same")
    torch.testing.assert_close(output, expected)
    torch.testing.assert_close(inputs.reference(), expected)
    torch.testing.assert_close(inputs.reference(window=10), expected[..., :10])


def test_other_asymmetric_padding_is_applied_first() -> None:
    inputs = ConvInputs.random(_signature(7, 0), torch.device("cpu"))
    expected = F.conv1d(F.pad(inputs.input, (7, 0)), inputs.weight, inputs.bias)
    torch.testing.assert_close(inputs.run(F.conv1d), expected)
    torch.testing.assert_close(inputs.reference(window=5), expected[..., :5])


def test_the_work_of_f_conv1d_counts_the_padding_it_takes_itself() -> None:
    from autoconv.strategies import reference

    same = reference().work(_signature(3, 4), {})
    assert (same["conv_padding"], same["elements"]) == (3, 2 * 3 * 57)  # the odd sample: a copy
    assert same["calls"] == 2  # the copy is one call, the convolution another
    assert reference().work(_signature(5, 5), {})["conv_padding"] == 5
    assert reference().work(_signature(7, 0), {})["conv_padding"] == 0


@pytest.mark.parametrize("length,kernel,stride,padding,dilation", [
    (300, 17, 1, 8, 1), (300, 17, 3, 40, 2), (50, 8, 1, "same", 2), (7, 3, 2, 5, 1),
    (300, 3, 1, 0, 1), (1, 1, 1, 0, 1), (50, 17, 3, 5, 1)])
@pytest.mark.parametrize("window", [1, 5, 64])
def test_leading_outputs_as_called_are_the_calls_own(length, kernel, stride, padding, dilation,
                                                     window) -> None:
    x, w = torch.randn(2, 3, length), torch.randn(4, 3, kernel)
    signature = Signature.of(x, w, None, stride, padding, dilation, 1)
    inputs = ConvInputs.random(signature, torch.device("cpu"))
    full = inputs.reference()
    leading, computed = inputs.leading_as_called(window)
    assert leading.shape[-1] >= min(window, full.shape[-1])
    assert computed >= leading.shape[-1]
    torch.testing.assert_close(leading, full[..., :leading.shape[-1]])
