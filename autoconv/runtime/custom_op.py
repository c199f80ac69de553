"""``autoconv.conv1d`` under ``torch.compile``: one custom op, so the graph never breaks.

While tracing, :func:`autoconv.conv1d` puts a single ``torch.ops.autoconv.conv1d`` node into
the graph (:func:`~autoconv.runtime.dispatch.traced_conv1d`; ``fullgraph=True`` works). When
the compiled graph runs, that op runs autoconv's ordinary eager dispatch
(:func:`autoconv.runtime.dispatch.eager_conv1d`): the tuned strategy for the signature,
looked up (or tuned) at run time, never while tracing.
Its shape function (the "fake" implementation) also checks the arguments, raising the error
``F.conv1d`` would.

Gradients go through a second op, ``torch.ops.autoconv.conv1d_backward``: it runs the forward
again with autograd on, through the strategy tuned for the signature *with* gradients (an FFT
strategy's backward for a long kernel, F.conv1d's for a short one), and returns the gradients
asked for. The recomputed forward is the price of keeping the strategies' own backward passes:
a compiled training step costs one extra forward convolution per autoconv call.

Padding reaches the ops as explicit (left, right) sample counts; only ``'same'`` pads
asymmetrically, so a call with ``left != right`` is run as ``padding='same'``.
"""

from typing import Optional

import torch

from autoconv.runtime import dispatch
from autoconv.signature import Signature


def _padding_arg(left: int, right: int) -> int | str:
    """``F.conv1d``'s padding argument for explicit (left, right) padding."""
    return left if left == right else "same"


@torch.library.custom_op("autoconv::conv1d", mutates_args=())
def conv1d_op(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
              stride: int, padding_left: int, padding_right: int, dilation: int,
              groups: int) -> torch.Tensor:
    """``F.conv1d`` by autoconv's tuned strategy, as one opaque graph node."""
    padding = _padding_arg(padding_left, padding_right)
    return dispatch.eager_conv1d(input, weight, bias, stride, padding, dilation,
                                 groups).contiguous()


@conv1d_op.register_fake
def _conv1d_fake(input, weight, bias, stride, padding_left, padding_right, dilation, groups):
    # F.conv1d's error for bad arguments, while tracing; else the output's shape
    s = Signature.of(input, weight, bias, stride, _padding_arg(padding_left, padding_right),
                     dilation, groups)
    return input.new_empty((*input.shape[:-2], s.out_channels, s.output_length))


def _autograd_restored() -> "torch._C._ForceDispatchKeyGuard":
    """Autograd back on inside a custom op's body, for the recomputed forward.

    torch runs a custom op's implementation with the autograd dispatch keys excluded (the op
    *is* the autograd boundary), so a graph built inside would record nothing. This guard
    (the one torch.func uses) restores the thread's dispatch state without them excluded.
    """
    exclude = torch._C._dispatch_tls_local_exclude_set().remove(
        torch._C.DispatchKey.AutogradFunctionality)
    return torch._C._ForceDispatchKeyGuard(torch._C._dispatch_tls_local_include_set(), exclude)


@torch.library.custom_op("autoconv::conv1d_backward", mutates_args=())
def conv1d_backward_op(grad_output: torch.Tensor, input: torch.Tensor, weight: torch.Tensor,
                       bias: Optional[torch.Tensor], stride: int, padding_left: int,
                       padding_right: int, dilation: int, groups: int, need_input: bool,
                       need_weight: bool, need_bias: bool
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of :func:`conv1d_op` (an empty tensor for each one not asked for)."""
    with _autograd_restored(), torch.enable_grad():
        x = input.detach().requires_grad_(need_input)
        w = weight.detach().requires_grad_(need_weight)
        b = None if bias is None else bias.detach().requires_grad_(need_bias)
        out = dispatch.eager_conv1d(x, w, b, stride,
                                    _padding_arg(padding_left, padding_right), dilation, groups)
        wanted = [t for t, need in ((x, need_input), (w, need_weight), (b, need_bias)) if need]
        grads = iter(torch.autograd.grad(out, wanted, grad_output))
    return tuple(next(grads).contiguous() if need else input.new_empty(0)
                 for need in (need_input, need_weight, need_bias))


@conv1d_backward_op.register_fake
def _conv1d_backward_fake(grad_output, input, weight, bias, stride, padding_left,
                          padding_right, dilation, groups, need_input, need_weight, need_bias):
    shapes = (input.shape, weight.shape, (weight.shape[0],))
    return tuple(input.new_empty(shape if need else (0,))
                 for shape, need in zip(shapes, (need_input, need_weight, need_bias)))


def _setup_context(ctx, inputs, output) -> None:
    input, weight, bias, *arguments = inputs
    ctx.save_for_backward(input, weight, bias)
    ctx.arguments = arguments


def _backward(ctx, grad_output):
    input, weight, bias = ctx.saved_tensors
    need_input, need_weight, need_bias = ctx.needs_input_grad[:3]
    grads = torch.ops.autoconv.conv1d_backward(
        grad_output, input, weight, bias, *ctx.arguments, need_input, need_weight,
        need_bias and bias is not None)
    return (grads[0] if need_input else None, grads[1] if need_weight else None,
            grads[2] if need_bias and bias is not None else None, None, None, None, None, None)


conv1d_op.register_autograd(_backward, setup_context=_setup_context)

