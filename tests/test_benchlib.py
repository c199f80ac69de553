"""The benchmark helpers in scripts/: timing, peak memory, float64 reference, peer adapters."""

from __future__ import annotations

from pathlib import Path

import bench_accuracy
import benchlib
import pytest
import torch
import torch.nn.functional as F
from bench_peers import PEERS

from autoconv.signature import Signature

linux_only = pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(),
                                reason="needs Linux /proc/self/clear_refs")


@linux_only
def test_peak_memory_sees_a_known_allocation() -> None:
    size = 64 * 2**20
    with benchlib.PeakMemory("cpu") as memory:
        tensor = torch.ones(size // 4)
        del tensor
    assert memory.extra_bytes is not None
    assert size * 0.95 <= memory.extra_bytes <= size * 1.25
    with benchlib.PeakMemory("cpu") as untouched:
        tensor = torch.empty(size // 4)  # never written: no physical memory
        del tensor
    assert untouched.extra_bytes is not None and untouched.extra_bytes < size * 0.1


def test_interleaved_timing_order_and_budget() -> None:
    order: list[str] = []
    calls = {name: (lambda n=name: order.append(n)) for name in "abc"}
    warm = {name: benchlib.WarmUp(None, benchlib.Timing(), 0.01) for name in "ab"}
    warm["c"] = benchlib.WarmUp(None, benchlib.Timing(samples=[5.0]), 5.0)  # too slow: done
    timings = benchlib.time_interleaved(calls, warm, device="cpu", repeats=3, budget_s=1.0,
                                        min_sample_s=0.0)
    # c is done: its warm-up was its sample; each sample of a and b is an untimed call and
    # the timed one, back to back, in interleaved rounds
    assert sorted(order) == ["a"] * 6 + ["b"] * 6
    assert all(order[i] == order[i + 1] for i in range(0, 12, 2))
    assert all(sorted(order[i:i + 4]) == ["a", "a", "b", "b"] for i in (0, 4, 8))
    assert [len(timings[n].samples) for n in "abc"] == [3, 3, 1]
    assert timings["c"].median == 5.0
    few = benchlib.time_interleaved({"a": lambda: None},
                                    {"a": benchlib.WarmUp(None, benchlib.Timing(), 0.4)},
                                    device="cpu", repeats=9, budget_s=1.0)
    assert len(few["a"].samples) == 2  # budget / estimate


def test_warm_up_runs_a_slow_call_once() -> None:
    count = []
    warm = benchlib.warm_up(lambda: count.append(1) or torch.zeros(1), "cpu", slow_s=0.0)
    assert len(count) == 1 and len(warm.timing.samples) == 1
    warm = benchlib.warm_up(lambda: count.append(1) or torch.zeros(1), "cpu", slow_s=60.0)
    assert len(count) == 3 and warm.timing.samples == [] and torch.equal(warm.output,
                                                                         torch.zeros(1))


def test_formatting_and_tables() -> None:
    assert benchlib.format_seconds(0.00123) == "1.23 ms"
    assert benchlib.format_seconds(2.5) == "2.5 s"
    assert benchlib.format_seconds(None) == "-"
    assert benchlib.format_bytes(512) == "512 B"
    assert benchlib.format_bytes(3 * 2**20) == "3 MiB"
    assert benchlib.format_bytes(None) == "n/a"
    table = benchlib.markdown_table(["a", "b"], [[1, "x|y"]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | x\\|y |"]
    assert "torch" in benchlib.machine_header("cpu")


@pytest.mark.parametrize("kwargs", [{"stride": 3, "padding": 4, "dilation": 2, "groups": 2},
                                    {"padding": "same", "dilation": 3}, {}])
def test_sampled_reference_matches_the_full_one(kwargs: dict) -> None:
    torch.manual_seed(0)
    x, w, b = torch.randn(3, 4, 3000), torch.randn(6, 4 // kwargs.get("groups", 1), 9), \
        torch.randn(6)
    sig = Signature.of(x, w, b, **kwargs)
    full = bench_accuracy.reference(x, w, b, sig, budget_s=60.0)
    sampled = bench_accuracy.reference(x, w, b, sig, budget_s=0.0)
    assert full.complete and not sampled.complete and len(sampled.regions) >= 2
    exact = F.conv1d(x.double(), w.double(), b.double(), **kwargs)
    noisy = exact.float() + 1e-3 * (torch.arange(exact.numel()).view(exact.shape) % 7 == 0)
    assert full.error(exact) == 0.0 and sampled.error(exact) == 0.0
    assert full.error(noisy) == pytest.approx(1e-3 / exact.abs().max().item(), rel=1e-3)
    assert 0 < sampled.error(noisy) <= full.error(noisy) * (1 + 1e-6)
    with pytest.raises(ValueError, match="shape"):
        full.error(exact[..., 1:])


#: The calls a peer cannot make, and why (every other peer and call must match F.conv1d):
#: julius takes neither groups nor dilation; scipy's oaconvolve takes one channel.
NOT_APPLICABLE = {
    ("julius", 2): "n/a: no groups",
    ("scipy.oaconvolve", 2): "n/a: single channel only",
    ("scipy.oaconvolve", 3): "n/a: single channel only",
}


@pytest.mark.parametrize("peer", PEERS, ids=lambda p: p.name)
@pytest.mark.parametrize("case,shape,kwargs", [
    (0, (2, 1, 500), {"padding": 20}),
    (1, (2, 1, 500), {"stride": 3, "padding": "valid"}),
    (2, (2, 4, 300), {"groups": 2, "padding": "same", "dilation": 2}),
    (3, (2, 4, 300), {"stride": 2, "padding": 5}),
])
def test_peer_adapters_match_f_conv1d_or_say_why(peer, case, shape, kwargs) -> None:
    torch.manual_seed(1)
    groups = kwargs.get("groups", 1)
    x = torch.randn(shape)
    w = torch.randn(shape[1], shape[1] // groups, 41)
    b = torch.randn(shape[1])
    sig = Signature.of(x, w, b, **kwargs)
    call = peer.prepare(x, w, b, sig)
    if call == "not installed":
        pytest.skip(f"{peer.name} is not installed")
    why = NOT_APPLICABLE.get((peer.name, case))
    if why is not None:
        assert call == why
        return
    assert callable(call), call  # a reason where none is expected is a failure
    torch.testing.assert_close(call(), F.conv1d(x, w, b, **kwargs), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kwargs", [{"padding": 100}, {"stride": 4, "padding": 3},
                                    {"padding": "same", "dilation": 5}, {}])
def test_probe_input_is_a_fraction_of_the_call(kwargs: dict) -> None:
    from bench_candidates import PROBE_FRACTION, probe_input

    x, w = torch.randn(4, 2, 4000), torch.randn(3, 2, 33)
    sig = Signature.of(x, w, **kwargs)
    small, scale = probe_input(x, sig)
    out = F.conv1d(small, w, **kwargs)
    assert small.shape[0] == 1 and out.shape[-1] >= sig.output_length / PROBE_FRACTION
    assert scale == pytest.approx(sig.batch * sig.output_length / out.shape[-1])
    torch.testing.assert_close(out[0, :, :10], F.conv1d(x, w, **kwargs)[0, :, :10])
    tiny = torch.randn(1, 2, 40)
    assert probe_input(tiny, Signature.of(tiny, w)) is None
