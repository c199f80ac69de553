"""How long a CLI call takes to answer, against the bare imports it cannot avoid.

In one run, interleaved (A B C A B C ...): ``python -c "import torch, autoconv"``, ``autoconv
select`` for a signature whose answer is in the database, and ``autoconv select`` in predict
mode on an empty database (the cost model's constants already cached for this machine, as
after any first use). Target (issue 14): the call answered from the database within about
1.5x of the imports.

Usage: python scripts/bench_startup.py [--repeats N] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import format_seconds, machine_header, markdown_table, publish

SHAPE = ["--input-shape", "1,2,3000", "--weight-shape", "2,2,101"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    autoconv = [sys.executable, "-m", "autoconv"]
    with tempfile.TemporaryDirectory() as tmp:
        known, empty = f"sqlite:///{tmp}/known.sqlite3", f"sqlite:///{tmp}/empty.sqlite3"
        subprocess.run([*autoconv, "select", *SHAPE, "--db", known, "--mode", "tune",
                        "--budget", "0.3"], check=True, capture_output=True)
        subprocess.run([*autoconv, "select", *SHAPE, "--db", empty], check=True,
                       capture_output=True)  # caches the cost model's constants
        commands = {
            "import torch, autoconv": [sys.executable, "-c", "import torch, autoconv"],
            "select, answer in the database": [*autoconv, "select", *SHAPE, "--db", known],
            "select, predict mode, empty database": [*autoconv, "select", *SHAPE, "--db",
                                                     empty, "--mode", "predict"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, command in commands.items():
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["import torch, autoconv"])
    rows = [[name, format_seconds(statistics.median(samples)),
             f"{statistics.median(samples) / base:.2f}x"] for name, samples in times.items()]
    report = "\n".join([machine_header("cpu"), "", "# CLI start-up", "",
                        f"Medians of {args.repeats} interleaved runs of each command.", "",
                        markdown_table(["command", "wall time", "/ bare imports"], rows)])
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
