"""torch's own test inputs for conv1d, through every autoconv entry point.

The sample and error inputs of the ``nn.functional.conv1d`` OpInfo, the ``nn.Conv1d``
ModuleInfo inputs and common_nn's Conv1d cases run through ``autoconv.conv1d``, every
registered strategy at every parameter set it would be tuned with, and ``autoconv.Conv1d``:
each gives what ``F.conv1d`` / ``nn.Conv1d`` gives (values and gradients), or raises its
exception type with its message. The same inputs run again in mode ``live`` with
exploration unbounded (the ``exploring`` fixture): every call of an exploration, whichever
candidate it runs, gives ``F.conv1d``'s values, and the exploration ends in a decision.
"""

from __future__ import annotations

import copy
import re
import warnings

import pytest
import torch
import torch.nn.functional as F

import autoconv
from autoconv.runtime.dispatch import dispatcher
from autoconv.signature import Signature
from autoconv.strategies import all_strategies
from autoconv.tuning.exploration import Exploration

pytest.importorskip("expecttest")  # torch.testing._internal imports it
from torch.testing._internal import common_nn
from torch.testing._internal.common_methods_invocations import op_db
from torch.testing._internal.common_modules import module_db

OPINFO = next(op for op in op_db if op.name == "nn.functional.conv1d")
MODULEINFO = next(m for m in module_db if m.module_cls is torch.nn.Conv1d)
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-10}
#: Calls of one input under unbounded exploration: more than every arm needs to be checked,
#: timed and decided.
EXPLORED_CALLS = 150


def _entry_points(sample_args: tuple) -> list[tuple[str, object]]:
    """``autoconv.conv1d`` and every strategy with every parameter set it offers for the call
    (``F.conv1d``'s answer decides which calls those are)."""
    points = [("autoconv.conv1d", autoconv.conv1d)]
    try:
        signature = Signature.of(*sample_args)
    except (RuntimeError, TypeError):
        signature = None
    for strategy in all_strategies():
        grids = strategy.param_grid(signature) if signature and strategy.supports(signature) \
            else [{}]
        for params in grids:
            label = ",".join(f"{k}={v}" for k, v in params.items())
            points.append((f"{strategy.name}({label})",
                           lambda *a, _s=strategy, _p=params: _s.run(*a, **_p)))
    return points


def _call_args(sample) -> tuple:
    """The sample as F.conv1d's positional arguments."""
    names = ("stride", "padding", "dilation", "groups")
    defaults = (1, 0, 1, 1)
    weight, bias = sample.args[0], sample.args[1] if len(sample.args) > 1 else None
    return (sample.input, weight, bias,
            *(sample.kwargs.get(name, default) for name, default in zip(names, defaults)))


def _assert_same_result(ours: torch.Tensor, theirs: torch.Tensor, dtype: torch.dtype) -> None:
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    scale = max(theirs.abs().max().item(), 1.0) if theirs.numel() else 1.0
    torch.testing.assert_close(ours, theirs, atol=TOLERANCE[dtype] * scale, rtol=0)


def _samples(dtype: torch.dtype):
    return list(OPINFO.sample_inputs("cpu", dtype, requires_grad=True))


@pytest.mark.usefixtures("fresh_autoconv")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("index", range(len(_samples(torch.float32))))
def test_opinfo_sample_inputs_give_f_conv1d_values_and_gradients(index: int, dtype) -> None:
    args = _call_args(_samples(dtype)[index])
    tensors = [t for t in args[:3] if t is not None]
    expected = F.conv1d(*args)
    grad_out = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, tensors, grad_out)
    for name, fn in _entry_points(args):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # 'same' with an even kernel copies
            out = fn(*args)
        _assert_same_result(out, expected, dtype)
        for ours, theirs in zip(torch.autograd.grad(out, tensors, grad_out), expected_grads):
            _assert_same_result(ours, theirs, dtype)


def _explore(call, args: tuple, expected: torch.Tensor, dtype: torch.dtype) -> None:
    """Call ``call(*args)`` :data:`EXPLORED_CALLS` times without gradients (the calls mode
    live explores on), each time checking ``F.conv1d``'s values; where the call started an
    exploration (a signature autoconv tunes, with a hashable key), it must have decided."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 'same' with an even kernel copies
        _assert_same_result(call(*args), expected, dtype)
        for _ in range(EXPLORED_CALLS):
            _assert_same_result(call(*args), expected, dtype)
    explorations = [runners[2] for runners in dispatcher._fast.values()
                    if isinstance(runners[2], Exploration)]
    for exploration in explorations:
        assert exploration.finished, [(a.candidate.label, a.times) for a in exploration.arms]
    if explorations and len(args) == 7:
        with torch.no_grad():
            assert autoconv.select(*args).origin == "measured"


@pytest.mark.usefixtures("exploring")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("index", range(len(_samples(torch.float32))))
def test_opinfo_sample_inputs_under_exploration_give_f_conv1d_values_and_gradients(
        index: int, dtype) -> None:
    args = _call_args(_samples(dtype)[index])
    tensors = [t for t in args[:3] if t is not None]
    expected = F.conv1d(*args)
    _explore(autoconv.conv1d, args, expected.detach(), dtype)
    grad_out = torch.randn_like(expected)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = autoconv.conv1d(*args)
    _assert_same_result(out, expected, dtype)
    for ours, theirs in zip(torch.autograd.grad(out, tensors, grad_out),
                            torch.autograd.grad(expected, tensors, grad_out)):
        _assert_same_result(ours, theirs, dtype)


ERRORS = list(OPINFO.error_inputs("cpu"))


@pytest.mark.parametrize("mode", ["fresh_autoconv", "exploring"])
@pytest.mark.parametrize("index", range(len(ERRORS)))
def test_opinfo_error_inputs_raise_f_conv1ds_error(index: int, mode: str,
                                                   request: pytest.FixtureRequest) -> None:
    request.getfixturevalue(mode)
    error = ERRORS[index]
    args = _call_args(error.sample_input)
    with pytest.raises(error.error_type, match=error.error_regex) as theirs:
        F.conv1d(*args)
    for name, fn in _entry_points(args):
        for _ in range(3 if mode == "exploring" else 1):  # an exploration's calls too
            with pytest.raises(error.error_type, match=error.error_regex) as ours:
                fn(*args)
            assert str(ours.value) == str(theirs.value), name


def _module_cases() -> list[tuple[str, object, tuple]]:
    """(id, constructor of an nn.Conv1d, input shape) of the ModuleInfo and common_nn cases."""
    cases = []
    for i, item in enumerate(MODULEINFO.module_inputs_func(
            MODULEINFO, device="cpu", dtype=torch.float64, requires_grad=True, training=True)):
        ctor = item.constructor_input
        cases.append((f"moduleinfo{i}", lambda c=ctor: torch.nn.Conv1d(*c.args, **c.kwargs),
                      tuple(item.forward_input.args[0].shape)))
    for test in common_nn.module_tests + common_nn.get_new_module_tests():
        name = test.get("fullname") or "_".join(
            filter(None, (test.get("module_name"), test.get("desc"))))
        if not name.startswith("Conv1d"):
            continue
        constructor = test.get("constructor") or (
            lambda args=test.get("constructor_args", ()): torch.nn.Conv1d(*args))
        cases.append((name, constructor, tuple(test["input_size"])))
    return cases


MODULE_CASES = _module_cases()


@pytest.mark.parametrize("constructor,input_shape", [c[1:] for c in MODULE_CASES],
                         ids=[c[0] for c in MODULE_CASES])
@pytest.mark.parametrize("mode", ["fresh_autoconv", "exploring"])
def test_module_inputs_give_nn_conv1d_outputs_and_gradients(constructor, input_shape, mode: str,
                                                            request: pytest.FixtureRequest
                                                            ) -> None:
    request.getfixturevalue(mode)
    torch.manual_seed(0)
    reference = constructor().double()
    ours = autoconv.Conv1d.convert(copy.deepcopy(reference))
    assert type(ours) is autoconv.Conv1d
    x = torch.randn(input_shape, dtype=torch.float64, requires_grad=True)
    expected = reference(x)
    if mode == "exploring":
        _explore(ours, (x,), expected.detach(), torch.float64)
    out = ours(x)
    _assert_same_result(out, expected, torch.float64)
    grad_out = torch.randn_like(expected)
    theirs = torch.autograd.grad(expected, [x, *reference.parameters()], grad_out)
    mine = torch.autograd.grad(out, [x, *ours.parameters()], grad_out)
    for a, b in zip(mine, theirs):
        _assert_same_result(a, b, torch.float64)
    # in inference a layer's call is decided as one whose weight is reused (tuned with the
    # weight's spectrum kept), in both of torch's inference modes
    for inference in (torch.no_grad, torch.inference_mode):
        with inference():
            _assert_same_result(ours(x.detach()), expected.detach(), torch.float64)


def test_the_cases_are_all_there() -> None:
    # 10 sample inputs, 10 error inputs, 4 ModuleInfo inputs and 17 common_nn cases in
    # torch 2.13: if torch adds or drops some, this says so rather than silently testing less
    assert (len(_samples(torch.float32)), len(ERRORS), len(MODULE_CASES)) == (10, 10, 21)
    assert all(re.fullmatch(r"moduleinfo\d|Conv1d\w*", name) for name, *_ in MODULE_CASES)
