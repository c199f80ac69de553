"""The paths a team takes to deploy a model after ``autoconv.patch`` (issue 27).

Each path either works, with the outputs ``nn.Conv1d`` gives, or is torch's own limit (a
parametrized module cannot be pickled or scripted in plain torch either), checked here to
fail exactly as the unpatched model does. Files are loaded back in a fresh process where
autoconv cannot be imported, as on a deployment target.
"""

from __future__ import annotations

import copy
import io
import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import autoconv

pytestmark = pytest.mark.usefixtures("fresh_autoconv")

TOLERANCE = {"rtol": 1e-4, "atol": 1e-4}


class Filter(nn.Module):
    """A long FIR filter (FFT territory), a reflect-padded short conv, and a functional
    ``autoconv.conv1d`` call in the forward."""

    def __init__(self) -> None:
        super().__init__()
        self.long = nn.Conv1d(2, 4, 255, padding=127)
        self.short = nn.Conv1d(4, 4, 3, padding=1, padding_mode="reflect")
        self.mix = nn.Parameter(torch.randn(4, 4, 5) / 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.short(torch.relu(self.long(x)))
        return autoconv.conv1d(y, self.mix, None, 1, "same", 1, 1)


def models() -> tuple[nn.Module, nn.Module, torch.Tensor]:
    """(the model patched, the same model unpatched, an input)."""
    torch.manual_seed(0)
    reference = Filter().eval()
    patched = autoconv.patch(copy.deepcopy(reference))
    return patched, reference, torch.randn(1, 2, 3000)


def weight_normed() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Conv1d(2, 4, 3, padding=1)))


def run_fresh(script: str, tmp_path: Path) -> str:
    """Run ``script`` in a new Python process where ``import autoconv`` fails."""
    blocked = "import sys\nsys.modules['autoconv'] = None  # not installed\nimport torch\n"
    result = subprocess.run([sys.executable, "-c", blocked + textwrap.dedent(script)],
                            check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def layers() -> nn.Sequential:
    """A model of torch's modules only (a whole-model pickle names its classes)."""
    torch.manual_seed(2)
    return nn.Sequential(nn.Conv1d(2, 4, 255, padding=127), nn.ReLU(),
                         nn.Conv1d(4, 4, 3, padding=1, padding_mode="reflect")).eval()


def test_saved_files_load_and_run_where_autoconv_is_not_installed(tmp_path: Path) -> None:
    patched, reference, x = models()
    sequential = layers()
    patched_sequential = autoconv.patch(copy.deepcopy(sequential))
    with torch.no_grad():
        torch.jit.trace(patched, x).save(str(tmp_path / "traced.pt"))
        torch.jit.script(patched).save(str(tmp_path / "scripted.pt"))
        torch.save(patched_sequential, tmp_path / "whole.pt")
        torch.export.save(torch.export.export(patched, (x,)), tmp_path / "exported.pt2")
        torch.save({"x": x, "expected": reference(x), "layers": sequential(x)},
                   tmp_path / "io.pt")
    out = run_fresh("""
        data = torch.load("io.pt")
        x = data["x"]
        whole = torch.load("whole.pt", weights_only=False)
        assert all(type(m).__module__.startswith("torch.") for m in whole.modules())
        outputs = {
            "traced": (torch.jit.load("traced.pt")(x), data["expected"]),
            "scripted": (torch.jit.load("scripted.pt")(x), data["expected"]),
            "exported": (torch.export.load("exported.pt2").module()(x), data["expected"]),
            "whole": (whole(x), data["layers"]),
        }
        for name, (value, expected) in outputs.items():
            assert torch.allclose(value, expected, rtol=1e-4, atol=1e-4), name
            print(name, "ok")
    """, tmp_path)
    assert out.split() == ["traced", "ok", "scripted", "ok", "exported", "ok", "whole", "ok"]


def test_a_reloaded_whole_model_is_patched_again_by_patch(tmp_path: Path) -> None:
    patched, reference, x = models()
    buffer = io.BytesIO()
    torch.save(patched, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert type(loaded.long) is nn.Conv1d  # pickled as torch's layer
    autoconv.patch(loaded)
    assert isinstance(loaded.long, autoconv.Conv1d)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), reference(x), **TOLERANCE)


def test_scripting_compiles_the_plain_convolution() -> None:
    patched, reference, x = models()
    scripted = torch.jit.script(patched)
    kinds = [node.kind() for node in scripted.inlined_graph.nodes()]
    assert kinds.count("aten::conv1d") == 3  # the two layers and the functional call
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), reference(x), **TOLERANCE)


def failure(attempt) -> str:
    """The last line of the error ``attempt()`` raises."""
    with pytest.raises(Exception) as error:
        attempt()
    return str(error.value).strip().splitlines()[-1]


def test_parametrized_layers_fail_to_script_and_pickle_exactly_as_in_torch() -> None:
    ours, theirs = autoconv.patch(weight_normed()), weight_normed()
    x = torch.randn(1, 2, 9)
    assert failure(lambda: pickle.dumps(ours)) == failure(lambda: pickle.dumps(theirs))
    assert failure(lambda: torch.jit.script(ours)(x)) == failure(
        lambda: torch.jit.script(theirs)(x))
    theirs.load_state_dict(ours.state_dict())  # the way torch offers: state_dict


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript-exporter", "dynamo"])
def test_onnx_export_runs_in_onnxruntime(dynamo: bool, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    if dynamo:
        pytest.importorskip("onnxscript")
    patched, reference, x = models()
    path = tmp_path / "model.onnx"
    with torch.no_grad():
        torch.onnx.export(patched, (x,), str(path), dynamo=dynamo)
        expected = reference(x)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    torch.testing.assert_close(torch.from_numpy(out), expected, **TOLERANCE)


def test_export_records_torchs_own_convolution() -> None:
    patched, reference, x = models()
    program = torch.export.export(patched, (x,))
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert "aten.conv1d.default" in targets or "aten.conv1d.padding" in targets
    assert not any(target.startswith("autoconv.") for target in targets)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), reference(x), **TOLERANCE)


@pytest.mark.parametrize("mode", ["default", "max-autotune-no-cudagraphs"])
def test_torch_compile_modes(mode: str) -> None:
    patched, reference, x = models()
    torch._dynamo.reset()
    compiled = torch.compile(patched, mode=mode)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), reference(x), **TOLERANCE)
    torch._dynamo.reset()


def test_state_dict_copies_and_dtypes_after_patching() -> None:
    patched, reference, x = models()
    plain = Filter()
    plain.load_state_dict(patched.state_dict())
    clone = copy.deepcopy(patched)
    assert isinstance(clone.long, autoconv.Conv1d)  # a copy in the process stays patched
    unpickled = pickle.loads(pickle.dumps(patched))
    with torch.no_grad():
        expected = reference(x)
        for model in (plain, clone, unpickled):
            torch.testing.assert_close(model(x), expected, **TOLERANCE)
        double = copy.deepcopy(patched).to(torch.float64)
        torch.testing.assert_close(double(x.double()), expected.double(), **TOLERANCE)
        half = copy.deepcopy(patched).half()
        half_reference = copy.deepcopy(reference).half()
        # half precision on the CPU: F.conv1d's own error is the yardstick
        torch.testing.assert_close(half(x.half()).float(), half_reference(x.half()).float(),
                                   rtol=2e-2, atol=2e-2)


def test_four_threads_at_once_and_one_torch_thread() -> None:
    patched, reference, x = models()
    inputs = [torch.randn(1, 2, length) for length in (3000, 3000, 1500, 700)]
    with torch.no_grad():
        expected = [reference(each) for each in inputs]
    results: dict[int, torch.Tensor] = {}
    errors: list[BaseException] = []

    def call(index: int) -> None:
        try:
            with torch.no_grad():
                for _ in range(3):
                    results[index] = patched(inputs[index])
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a call hung"
    assert not errors, errors
    for index, value in results.items():
        torch.testing.assert_close(value, expected[index], **TOLERANCE)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            torch.testing.assert_close(patched(x), F.conv1d(
                reference.short(torch.relu(reference.long(x))), reference.mix, None, 1,
                "same"), **TOLERANCE)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads_before)


def test_scripting_under_the_global_switch() -> None:
    # autoconv.enable() makes F.conv1d autoconv's: TorchScript still compiles aten::conv1d
    model, x = layers(), torch.randn(1, 2, 800)
    with torch.no_grad():
        expected = model(x)
    autoconv.enable()
    try:
        scripted = torch.jit.script(model)
        with torch.no_grad():
            torch.testing.assert_close(scripted(x), expected, **TOLERANCE)
    finally:
        autoconv.disable()
