"""Record what the tuner's timer observes on a busy machine, for replay in tests.

Times the candidates of one signature (a Hyena-style long depthwise convolution, 768
channels, a 1024-tap kernel on 2047 samples: FFT about 3x faster than ``F.conv1d`` on a quiet
machine) exactly as tuning does (:func:`autoconv.tuning.timing.measure_interleaved`, 1.8 s),
while ``--hogs`` other processes keep the cores busy, and writes the observations
(:mod:`autoconv.tuning.replay`) to ``--out``. ``tests/tuning/test_replay.py`` replays the
committed recording through the real racing, tie and contention rules.

Usage: python scripts/record_busy_timings.py [--hogs N] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from benchlib import start_hogs

from autoconv.signature import Signature
from autoconv.strategies import get
from autoconv.tuning.candidates import Candidate, CandidateCall, ConvInputs
from autoconv.tuning.replay import RecordingTimer, save

SIGNATURE = Signature(batch=1, in_channels=768, out_channels=768, length=2047,
                      kernel_size=1024, stride=1, padding_left=0, padding_right=0,
                      dilation=1, groups=768, dtype="float32", device="cpu")
CANDIDATES = [Candidate(get("direct"), ()), Candidate(get("fft"), ()),
              Candidate(get("overlap_add"), (("block_size", 2048),))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--budget", type=float, default=1.8)
    parser.add_argument("--out", type=Path, default=Path("tests/tuning/data/busy_long_conv.json"))
    args = parser.parse_args()
    inputs = ConvInputs.random(SIGNATURE, torch.device("cpu"))
    calls = [CandidateCall(candidate, inputs) for candidate in CANDIDATES]
    with torch.no_grad():
        for call in calls:
            call()  # warmed up, as tuning does before timing
        hogs = start_hogs(args.hogs)
        try:
            time.sleep(0.5)
            timer = RecordingTimer()
            timings = timer(calls, device=torch.device("cpu"),
                            deadline=time.perf_counter() + args.budget, max_samples=25)
        finally:
            for hog in hogs:
                hog.kill()
    for candidate, timing in zip(CANDIDATES, timings):
        print(f"{candidate.label}: {timing}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save(timer.recordings, args.out)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
