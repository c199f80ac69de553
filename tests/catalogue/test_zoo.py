"""Real architectures (autoconv.catalogue.zoo), patched or under the global switch, against the
same models unpatched: outputs and gradients in float32 and under CPU autocast."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

import autoconv
from autoconv import plain
from autoconv.catalogue import zoo
from autoconv.runtime import dispatcher

#: Short inputs: a few tenths of a second of audio keep the test quick on two cores.
INPUTS = {"wav2vec2_base": (2, 1, 4000), "encodec_24khz_encoder": (1, 1, 4800),
          "hifigan_v1": (1, 80, 12), "mamba_130m_mixer": (2, 768, 300),
          "conformer_m_encoder": (2, 256, 50), "conv_tasnet": (1, 1, 1600)}
#: How many conv1d modules patch() converts in each (the Mamba mixer calls F.conv1d on its
#: module's weight, so only the global switch reaches its convolution).
CONVERTED = {"wav2vec2_base": 8, "encodec_24khz_encoder": 18, "hifigan_v1": 74,
             "mamba_130m_mixer": 1, "conformer_m_encoder": 48, "conv_tasnet": 99}


@pytest.fixture
def quick_tuning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AUTOCONV_MODEL_DIR", str(tmp_path / "models"))
    with autoconv.settings.override(db_url=f"sqlite:///{tmp_path / 'tuning.sqlite3'}",
                                    budget_s=0.05, mode="tune", persist=True):
        yield
    dispatcher.reset()


def _pair(name: str) -> tuple[nn.Module, nn.Module]:
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(zoo.FACTORIES[name]())
    return models[0], models[1]


def _loss(out: torch.Tensor) -> torch.Tensor:
    # the output's projection on a fixed random direction: its mean square would be flat
    # through the Conformer's final layer norm (1 whatever the input; the gradients, noise)
    direction = torch.randn(out.shape, generator=torch.Generator().manual_seed(0))
    return (out.float() * direction).mean()


def _run(model: nn.Module, x: torch.Tensor, autocast: bool,
         after_forward: Callable[[], None] = lambda: None
         ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    x = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = model(x)
    after_forward()
    grads = torch.autograd.grad(_loss(out), [x, *model.parameters()], allow_unused=True)
    return out, [g for g in grads if g is not None]


def _error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    assert ours.shape == theirs.shape
    scale = theirs.float().abs().max().item() or 1.0
    return (ours.float() - theirs.float()).abs().max().item() / scale


def _flat(tensors: list[torch.Tensor], truths: list[torch.Tensor]) -> torch.Tensor:
    """Every gradient over the norm of its true value (so that large ones do not hide
    small ones), in one vector."""
    return torch.cat([t.float().flatten() / (true.float().norm().item() or 1.0)
                      for t, true in zip(tensors, truths, strict=True)])


def _norm_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    assert ours.shape == theirs.shape
    scale = theirs.float().norm().item() or 1.0
    return (ours.float() - theirs.float()).norm().item() / scale


@dataclasses.dataclass
class _Call:
    """One convolution autoconv answered inside a model: its arguments and its output."""
    input: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None
    arguments: tuple
    output: torch.Tensor


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[_Call]:
    """Every call autoconv's dispatch answers (modules and the global switch alike), as the
    model made it, with the output of whatever strategy ran."""
    recorded: list[_Call] = []
    runners = dispatcher.runners

    def recording(run):
        if run is None:
            return None

        def recorded_run(input, weight, bias=None, *arguments, **cache):
            output = run(input, weight, bias, *arguments, **cache)
            recorded.append(_Call(input, weight, bias, arguments, output))
            return output
        return recorded_run

    def recording_runners(*args):
        run, run_cached, watch = runners(*args)
        return recording(run), recording(run_cached), watch
    monkeypatch.setattr(dispatcher, "runners", recording_runners)
    return recorded


def _check_each_call(calls: list[_Call]) -> None:
    """Each recorded call's output and gradients (for a random output gradient) against
    ``F.conv1d``'s on the very same tensors. Inside a model, float32 gradients cannot be
    compared whole: a pre-activation within rounding of a PReLU's kink takes the other slope
    (one flipped sample moved a Conv-TasNet PReLU's slope gradient by 12% and the whole
    model's by 1%, with every convolution exact to 1e-7); call by call, nothing flips."""
    assert calls
    for call in list(calls):
        args = (call.bias, *call.arguments)
        expected = plain.conv1d(call.input, call.weight, *args)  # not the switched F.conv1d
        assert call.output.dtype == expected.dtype and call.output.is_contiguous()
        assert _error(call.output, expected) <= 1e-4
        if not call.output.requires_grad:
            continue
        wrt = [t for t in (call.input, call.weight, call.bias)
               if t is not None and t.requires_grad]
        grad = torch.randn(call.output.shape, generator=torch.Generator().manual_seed(1))
        ours = torch.autograd.grad(call.output, wrt, grad, retain_graph=True)
        theirs = torch.autograd.grad(expected, wrt, grad, retain_graph=True)
        for a, b in zip(ours, theirs, strict=True):
            assert _error(a, b) <= 1e-4


@pytest.mark.usefixtures("quick_tuning")
@pytest.mark.parametrize("name", list(zoo.FACTORIES))
def test_the_model_through_autoconv_matches_the_model_without(name: str,
                                                               calls: list[_Call]) -> None:
    reference, model = _pair(name)
    autoconv.patch(model)
    assert sum(isinstance(m, autoconv.Conv1d) for m in model.modules()) == CONVERTED[name]
    x = torch.randn(INPUTS[name], generator=torch.Generator().manual_seed(0))
    expected, expected_grads = _run(reference, x, autocast=False)
    for _ in range(2):  # the pass that tunes, then one that runs what it decided
        calls.clear()
        with autoconv.enabled(name == "mamba_130m_mixer"):  # it calls F.conv1d itself
            out, grads = _run(model, x, autocast=False,
                              after_forward=lambda: _check_each_call(calls))
        assert len(calls) >= CONVERTED[name]
        assert out.dtype == expected.dtype and _error(out, expected) <= 1e-4
        # the gradients as a whole, loosely (see _check_each_call: a flipped kink moved this
        # measure up to 6e-3 in our runs; a wrong convolution gradient fails call by call)
        assert [g.dtype for g in grads] == [g.dtype for g in expected_grads]
        assert _norm_error(_flat(grads, expected_grads), _flat(expected_grads, expected_grads)
                           ) <= 0.1
    rows = [m for _, m in dispatcher.selector.store.db.measurements()]
    assert rows and {row.signature.dtype for row in rows} == {"float32"}


@pytest.mark.usefixtures("quick_tuning")
@pytest.mark.parametrize("name", ["wav2vec2_base", "hifigan_v1"])
def test_in_inference_the_layers_reused_weights_give_the_model_without(
        name: str, calls: list[_Call]) -> None:
    # weight-normed layers: their weight computed once, their calls decided as layers'
    reference, model = _pair(name)
    autoconv.patch(model.eval())
    reference.eval()
    x = torch.randn(INPUTS[name], generator=torch.Generator().manual_seed(0))
    # no live re-check: a sampled call may run F.conv1d instead, which no runner records
    with autoconv.settings.override(recheck_every=0):
        for inference in (torch.no_grad, torch.inference_mode, torch.no_grad):
            calls.clear()
            with inference():
                expected, out = reference(x), model(x)
                _check_each_call(calls)
            assert len(calls) == CONVERTED[name] and _error(out, expected) <= 1e-4
    rows = [m for _, m in dispatcher.selector.store.db.measurements()]
    assert rows and all(row.signature.weight_reused for row in rows)


@pytest.mark.usefixtures("quick_tuning")
@pytest.mark.parametrize("name", list(zoo.FACTORIES))
def test_under_autocast_the_model_is_as_accurate_as_without_autoconv(name: str) -> None:
    # Both runs are bfloat16: each is compared with the float32 model, and autoconv's
    # error may not exceed F.conv1d's own by more than a little (its FFTs run in float32).
    reference, model = _pair(name)
    autoconv.patch(model)
    x = torch.randn(INPUTS[name])
    truth, truth_grads = _run(reference, x, autocast=False)
    expected, expected_grads = _run(reference, x, autocast=True)
    with autoconv.enabled(name == "mamba_130m_mixer"):
        out, grads = _run(model, x, autocast=True)
    # the Conformer ends in a layer norm, which autocast runs in float32 (its convolutions'
    # bfloat16 is checked below)
    ends_in_float32 = name == "conformer_m_encoder"
    assert out.dtype == expected.dtype == (torch.float32 if ends_in_float32 else torch.bfloat16)
    assert _error(out, truth) <= 2 * _error(expected, truth) + 1e-2
    # the gradients as a whole, by the norm of their error: through HiFi-GAN's 74 bfloat16
    # layers one parameter's gradient (a tiny, cancelling sum) carries 8-61% of noise
    # whichever strategies run, and which run depends on the machine's load while tuning
    for ours, theirs in zip(grads, expected_grads, strict=True):
        assert ours.dtype == theirs.dtype
    true = _flat(truth_grads, truth_grads)
    assert _norm_error(_flat(grads, truth_grads), true) <= (
        2 * _norm_error(_flat(expected_grads, truth_grads), true) + 1e-2)
    rows = [m for _, m in dispatcher.selector.store.db.measurements()]
    assert rows and {row.signature.dtype for row in rows} == {"bfloat16"}


@pytest.mark.usefixtures("quick_tuning")
def test_patch_alone_does_not_reach_a_direct_f_conv1d_call_and_the_switch_does() -> None:
    _, model = _pair("mamba_130m_mixer")
    autoconv.patch(model)
    x = torch.randn(1, 768, 100)
    model(x)
    assert list(dispatcher.selector.store.db.measurements()) == []
    with autoconv.enabled():
        model(x)
    assert len(list(dispatcher.selector.store.db.measurements())) > 0


def test_every_factory_has_an_example_input_that_runs() -> None:
    assert set(zoo.EXAMPLE_INPUTS) == set(zoo.FACTORIES) == set(INPUTS)
    for name, factory in zoo.FACTORIES.items():
        batch, channels, _ = zoo.EXAMPLE_INPUTS[name]
        with torch.no_grad():
            out = factory()(torch.randn(batch, channels, INPUTS[name][-1]))
        assert out.dim() == 3 and out.shape[0] == batch and torch.isfinite(out).all()


def test_bench_models_smoke(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_models.py"
    env = {**os.environ, "AUTOCONV_BUDGET_S": "0.1",
           "AUTOCONV_MODEL_DIR": str(tmp_path / "models")}
    result = subprocess.run([sys.executable, "-W", "ignore", str(script), "--only",
                             "mamba_130m_mixer", "--repeats", "1", "--db",
                             f"sqlite:///{tmp_path / 'tuning.sqlite3'}"],
                            capture_output=True, text=True, timeout=300, env=env,
                            check=False)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines()
               if line.startswith("| mamba_130m_mixer |"))
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    assert cells[1] == "1"  # one conv1d module converted
    assert cells[-2] == "-"  # one round: no quartiles of the rounds' ratios
    assert set(cells[-1].split(", ")) <= set(autoconv.strategies.names())  # what it ran
    training = result.stdout.split("(one training step")[1]
    row = next(line for line in training.splitlines()
               if line.startswith("| mamba_130m_mixer |"))
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    assert float(cells[1]) <= 1e-4 and float(cells[2]) <= 1e-3  # output, gradients
    assert set(cells[-1].split(", ")) <= set(autoconv.strategies.names())
    assert "| transformer encoder layer 4x256x512 |" in result.stdout
