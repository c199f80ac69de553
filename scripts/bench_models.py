"""Real architectures through autoconv: converted layers, parity, first-call tuning cost and
forward time before and after; and what the global switch costs a model without conv1d.

For each model of ``autoconv.catalogue.zoo`` (published configurations, random weights) at its
example input (about a second of audio): the model is patched (the Mamba mixer, which calls
``F.conv1d`` itself, runs under ``autoconv.enable()``), its first forward pass tunes every
signature into a fresh database (or ``--db``), and then plain and autoconv forward passes
(inference, ``torch.no_grad``) are timed interleaved. Then one training step (unless
``--no-training``): the model in training mode, forward with gradients, a scalar loss,
backward, on the same weights for both (the state dict copied); the signatures of a call that
needs gradients are distinct, so the first autoconv step tunes them, and the steps are then
timed interleaved; the errors of the output and of the parameters' gradients are against the
plain model's. The loss is the output's projection on a fixed random direction: a mean square
would be flat through a final layer norm (the Conformer's: 1 whatever the input), leaving
gradients of float noise to compare. Last, a transformer encoder layer (no conv1d at all) is
timed with the switch off and on.

With ``--autocast``, every model call, plain and autoconv alike, runs under
``torch.autocast("cpu", dtype=torch.bfloat16)``: the convolutions' signatures are bfloat16
(tuned as such), and the errors are against the plain model under the same autocast.

The speed-up is the ratio of the medians; beside it, the middle half of the rounds' own
ratios (each round times both, in a shuffled order): a speed-up whose quartiles both lie
above 1 was not made by a few disturbed samples. ``--budget`` buys more rounds.

Usage: python scripts/bench_models.py [--repeats N] [--budget S] [--only NAME ...]
       [--no-training] [--autocast] [--db URL] [--out FILE]
"""

from __future__ import annotations

import functools
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
from benchlib import (
    Timing,
    format_seconds,
    machine_header,
    markdown_table,
    model_arguments,
    publish,
    time_interleaved,
    warm_up,
)
from torch import nn

import autoconv
from autoconv.catalogue import zoo
from autoconv.runtime import dispatcher

#: Models that reach their convolutions only through F.conv1d: timed under the switch.
SWITCHED = {"mamba_130m_mixer"}


def _relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    scale = theirs.abs().max().item() or 1.0
    return (ours - theirs).abs().max().item() / scale


@functools.cache
def _direction(shape: torch.Size) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def _loss(output: torch.Tensor) -> torch.Tensor:
    """The output's projection on a fixed random direction (see the module docstring)."""
    return (output.float() * _direction(output.shape)).mean()


def _autocast(enabled: bool) -> torch.autocast:
    """CPU autocast to bfloat16 (``--autocast``), or a context that changes nothing."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


def _training_step(model: nn.Module, x: torch.Tensor, switched: bool, autocast: bool
                   ) -> Callable[[], torch.Tensor]:
    def step() -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        with autoconv.enabled(switched), _autocast(autocast):
            output = model(x)
        _loss(output).backward()
        return output.detach()

    return step


def _gradient_error(ours: nn.Module, theirs: nn.Module) -> float:
    """The largest error of any parameter's gradient over the largest gradient of all (inf if
    one has none where the other has one).

    Judged over the whole model, not parameter by parameter: a gradient that is a sum of
    terms cancelling to almost nothing (a PReLU slope's in Conv-TasNet: 6e-6, where other
    parameters' reach 1e-3) differs by float32 rounding relative to itself: plain float32
    was already 4% from float64 there, whichever convolution computed the terms."""
    grads = [(a.grad, b.grad) for a, b in zip(ours.parameters(), theirs.parameters(),
                                               strict=True)]
    if any((a is None) != (b is None) for a, b in grads):
        return math.inf
    pairs = [(a, b) for a, b in grads if a is not None and b is not None]
    scale = max((b.abs().max().item() for _, b in pairs), default=0.0) or 1.0
    return max(((a - b).abs().max().item() for a, b in pairs), default=0.0) / scale


def _round_ratios(plain: Timing, tuned: Timing) -> str:
    """The quartiles of plain / autoconv over the rounds that timed both."""
    ratios = [a / b for a, b in zip(plain.samples, tuned.samples)]
    if len(ratios) < 4:
        return "-"
    low, _, high = statistics.quantiles(ratios, n=4)
    return f"{low:.2f}-{high:.2f} ({len(ratios)} rounds)"


def bench_model(name: str, repeats: int, budget_s: float, autocast: bool) -> list[str]:
    torch.manual_seed(0)
    reference = zoo.FACTORIES[name]().eval()
    torch.manual_seed(0)
    model = autoconv.patch(zoo.FACTORIES[name]().eval())
    converted = sum(isinstance(m, autoconv.Conv1d) for m in model.modules())
    x = torch.randn(zoo.EXAMPLE_INPUTS[name])

    def ours() -> torch.Tensor:
        with autoconv.enabled(name in SWITCHED), _autocast(autocast):
            return model(x)

    def theirs() -> torch.Tensor:
        with _autocast(autocast):
            return reference(x)

    with torch.no_grad():
        started = time.perf_counter()
        first = ours()  # tunes every signature the model makes
        tuning_s = time.perf_counter() - started
        dispatcher.preparations.join()  # kernels compiling in the background: timed built
        error = _relative_error(first.float(), theirs().float())
        calls = {"plain": theirs, "autoconv": ours}
        warmups = {key: warm_up(fn, "cpu", 5.0) for key, fn in calls.items()}
        timings = time_interleaved(calls, warmups, device="cpu", repeats=repeats,
                                   budget_s=budget_s)
    plain, tuned = timings["plain"].median, timings["autoconv"].median
    chosen = sorted({c.strategy for c in dispatcher.selector.remembered().values()})
    return [name, str(converted), f"{error:.1e}", f"{tuning_s:.1f} s", format_seconds(plain),
            format_seconds(tuned), f"{plain / tuned:.2f}x",
            _round_ratios(timings["plain"], timings["autoconv"]), ", ".join(chosen)]


def bench_training(name: str, repeats: int, budget_s: float, autocast: bool) -> list[str]:
    """One training step, plain and autoconv, on the same weights (see the module docstring)."""
    torch.manual_seed(0)
    reference = zoo.FACTORIES[name]().train()
    model = zoo.FACTORIES[name]().train()
    model.load_state_dict(reference.state_dict())
    autoconv.patch(model)
    x = torch.randn(zoo.EXAMPLE_INPUTS[name])
    plain_step = _training_step(reference, x, False, autocast)
    ours = _training_step(model, x, name in SWITCHED, autocast)

    started = time.perf_counter()
    first = ours()  # tunes every signature of the step
    tuning_s = time.perf_counter() - started
    dispatcher.preparations.join()  # kernels compiling in the background: timed built
    error = _relative_error(first.float(), plain_step().float())
    grad_error = _gradient_error(model, reference)
    calls = {"plain": plain_step, "autoconv": ours}
    warmups = {key: warm_up(fn, "cpu", 5.0) for key, fn in calls.items()}
    timings = time_interleaved(calls, warmups, device="cpu", repeats=repeats, budget_s=budget_s)
    plain, tuned = timings["plain"].median, timings["autoconv"].median
    chosen = sorted({c.strategy for (s, _), c in dispatcher.selector.remembered().items()
                     if s.requires_grad})
    return [name, f"{error:.1e}", f"{grad_error:.1e}", f"{tuning_s:.1f} s",
            format_seconds(plain), format_seconds(tuned), f"{plain / tuned:.2f}x",
            _round_ratios(timings["plain"], timings["autoconv"]), ", ".join(chosen)]


def bench_switch(repeats: int) -> list[str]:
    """A transformer encoder layer (no conv1d): forward with the switch off and on."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(512, 8, 2048, batch_first=True).eval()
    x = torch.randn(4, 256, 512)

    def on() -> torch.Tensor:
        with autoconv.enabled():
            return layer(x)

    with torch.no_grad():
        calls = {"off": lambda: layer(x), "on": on}
        warmups = {key: warm_up(fn, "cpu", 5.0) for key, fn in calls.items()}
        timings = time_interleaved(calls, warmups, device="cpu", repeats=repeats, budget_s=5.0)
    off, enabled = timings["off"].median, timings["on"].median
    return ["transformer encoder layer 4x256x512", format_seconds(off), format_seconds(enabled),
            f"{enabled / off:.3f}"]


def main() -> int:
    parser = model_arguments(__doc__.splitlines()[0], list(zoo.FACTORIES), 15, 5.0)
    parser.add_argument("--no-training", action="store_true",
                        help="time inference alone, not a training step")
    parser.add_argument("--autocast", action="store_true",
                        help="run every model call under CPU autocast (bfloat16)")
    args = parser.parse_args()
    precision = " under CPU autocast (bfloat16)" if args.autocast else ""
    load = os.getloadavg()[0]
    db = args.db or f"sqlite:///{tempfile.mkdtemp()}/tuning.sqlite3"
    rows, training_rows = [], []
    with autoconv.settings.override(db_url=db, mode="tune"):
        for name in args.only or zoo.FACTORIES:
            rows.append(bench_model(name, args.repeats, args.budget, args.autocast))
            if not args.no_training:
                training_rows.append(bench_training(name, args.repeats, args.budget,
                                                    args.autocast))
            dispatcher.reset()
        switch = bench_switch(args.repeats)
    training = [] if args.no_training else [
        f"# Real architectures through autoconv{precision} (one training step)",
        "",
        markdown_table(["model", "max error / max |output|",
                        "max error / max |gradient| (all parameters)",
                        "first training step (tuning)", "plain", "autoconv", "speed-up",
                        "rounds' ratios (quartiles)", "strategies run"], training_rows), ""]
    report = "\n".join([
        machine_header("cpu"), f"- load average before: {load:.2f}", "",
        f"# Real architectures through autoconv{precision} (inference, one run)", "",
        markdown_table(["model", "conv1d converted", "max error / max |output|",
                        "first call (tuning)", "plain", "autoconv", "speed-up",
                        "rounds' ratios (quartiles)", "strategies run"], rows), "",
        *training,
        "# The global switch on a model without conv1d", "",
        markdown_table(["workload", "switch off", "switch on", "on / off"], [switch])])
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
