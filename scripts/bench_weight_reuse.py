"""Layers' inference with their weight reused: where a model's speed-up comes from.

For each model of ``autoconv.catalogue.zoo`` (published configurations, random weights) at its
example input, in inference (``torch.no_grad``), four forward passes are timed interleaved in
one process, on the same weights:

* ``plain``: the model as torch runs it;
* ``as before``: patched, but every layer's call decided as a functional call whose weight
  may be new each time (what autoconv did before ``Signature.weight_reused``): a weight-normed
  layer recomputes its weight on every call, and FFT is timed with the weight transformed.
  One difference: before, a layer with a plain (not parametrized) weight decided for an FFT
  strategy as a functional call still ran it with its spectrum kept; here it does not. None
  of the four models here has such a layer (wav2vec2's and the Conformer's plain-weight
  layers run ``direct`` or ``gemm`` in the "strategies run" column; HiFi-GAN's and EnCodec's
  are all weight-normed);
* ``weight reused, F.conv1d``: patched, each layer reusing its weight (a weight norm computed
  once) but every convolution run by ``F.conv1d``: the share of the parametrization alone;
* ``autoconv``: patched as shipped, each layer's call decided with its weight (and its
  spectrum) reused.

Both tuned variants tune into one fresh database (or ``--db``) on their first pass; the
report names the strategies each ran. The speed-ups are ratios of medians against ``plain``.

Usage: python scripts/bench_weight_reuse.py [--only NAME ...] [--budget S] [--repeats N]
       [--db URL] [--out FILE]
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from benchlib import (
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
from autoconv import plain
from autoconv.catalogue import zoo
from autoconv.runtime import dispatcher

#: Models whose layers are autoconv.Conv1d once patched (the Mamba mixer calls F.conv1d).
MODELS = ("wav2vec2_base", "hifigan_v1", "encodec_24khz_encoder", "conformer_m_encoder")


def _layers(model: nn.Module) -> list[autoconv.Conv1d]:
    return [m for m in model.modules() if isinstance(m, autoconv.Conv1d)]


def _as_before(model: nn.Module) -> nn.Module:
    """Every layer's weight computed anew and its calls decided as functional ones."""
    for layer in _layers(model):
        layer._weight_for_call = lambda layer=layer: (layer.weight, False)
    return model


def _reused_plain(model: nn.Module) -> nn.Module:
    """Every layer's weight reused, every convolution ``F.conv1d``'s."""
    for layer in _layers(model):
        def run(input, weight, bias, weight_reused=None, layer=layer):
            if layer.padding_mode != "zeros":
                input = F.pad(input, layer._reversed_padding_repeated_twice,
                              mode=layer.padding_mode)
                return plain.conv1d(input, weight, bias, layer.stride, 0, layer.dilation,
                                    layer.groups)
            return plain.conv1d(input, weight, bias, layer.stride, layer.padding,
                                layer.dilation, layer.groups)
        layer._tuned_forward = run
    return model


def bench(name: str, repeats: int, budget_s: float) -> list[str]:
    def build(convert: Callable[[nn.Module], nn.Module] | None) -> nn.Module:
        torch.manual_seed(0)
        model = zoo.FACTORIES[name]().eval()
        return model if convert is None else convert(autoconv.patch(model))

    models = {"plain": build(None), "as before": build(_as_before),
              "weight reused, F.conv1d": build(_reused_plain),
              "autoconv": build(lambda m: m)}
    x = torch.randn(zoo.EXAMPLE_INPUTS[name])
    ran: dict[str, str] = {}
    tuning: dict[str, float] = {}
    errors: list[float] = []
    with torch.no_grad():
        reference = models["plain"](x)
        for key, reused in (("as before", False), ("autoconv", True)):
            started = time.perf_counter()
            output = models[key](x)
            tuning[key] = time.perf_counter() - started
            dispatcher.preparations.join()
            ran[key] = ", ".join(sorted({c.strategy for (s, _), c in
                                         dispatcher.selector.remembered().items()
                                         if s.weight_reused == reused}))
            errors.append(((output - reference).abs().max() / reference.abs().max()).item())
        calls = {key: (lambda model=model: model(x)) for key, model in models.items()}
        warmups = {key: warm_up(fn, "cpu", 5.0) for key, fn in calls.items()}
        timings = time_interleaved(calls, warmups, device="cpu", repeats=repeats,
                                   budget_s=budget_s)
    base = timings["plain"].median
    cells = [f"{format_seconds(t.median)} ({base / t.median:.2f}x)"
             for key, t in timings.items() if key != "plain"]
    return [name, format_seconds(base), *cells, f"{max(errors):.1e}",
            f"{ran['as before']} / {ran['autoconv']}",
            f"{tuning['as before']:.1f} / {tuning['autoconv']:.1f} s"]


def main() -> int:
    args = model_arguments(__doc__.splitlines()[0], MODELS, 100, 20.0).parse_args()
    load = os.getloadavg()[0]
    db = args.db or f"sqlite:///{tempfile.mkdtemp()}/tuning.sqlite3"
    rows = []
    with autoconv.settings.override(db_url=db, mode="tune"):
        for name in args.only or MODELS:
            rows.append(bench(name, args.repeats, args.budget))
            dispatcher.reset()
    report = "\n".join([
        machine_header("cpu"), f"- load average before: {load:.2f}", "",
        "# Layers' inference with their weight reused (one run, medians, speed-up over plain)",
        "",
        markdown_table(["model", "plain", "as before", "weight reused, F.conv1d", "autoconv",
                        "max error / max |output|", "strategies run (before / now)",
                        "first call (before / now)"], rows)])
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
