"""settle_allocator: after it, a buffer of a few MiB no longer gets an mmap of its own."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import subprocess
import sys

import pytest

#: Run in a fresh interpreter: the test process has long settled its allocator by itself.
PROBE = """
import ctypes, ctypes.util, sys
import torch
from autoconv.tuning.timing import settle_allocator

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
libc.mallinfo2.restype = MallInfo2

def mapped_while_alive(nbytes):
    before = libc.mallinfo2().hblks
    buffer = torch.empty(nbytes, dtype=torch.uint8)
    during = libc.mallinfo2().hblks
    del buffer
    return during - before

print(mapped_while_alive(4 << 20), end=" ")
if sys.argv[1] == "settle":
    settle_allocator()
else:  # tune one small convolution: the tuner settles before it times anything
    import tempfile
    import autoconv
    with tempfile.TemporaryDirectory() as folder, autoconv.settings.override(
            mode="tune", db_url=f"sqlite:///{folder}/db.sqlite3", budget_s=0.2):
        autoconv.conv1d(torch.randn(1, 2, 64), torch.randn(2, 2, 3))
        from autoconv.runtime.dispatch import dispatcher
        dispatcher.reset()
print(mapped_while_alive(4 << 20), mapped_while_alive(24 << 20))
"""


def _has_mallinfo2() -> bool:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        return hasattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not _has_mallinfo2(), reason="needs glibc 2.33+ (mallinfo2)")
@pytest.mark.parametrize("how", ["settle", "tune"])
def test_after_settling_a_few_mib_come_from_the_heap_not_a_fresh_mmap(how: str) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    result = subprocess.run([sys.executable, "-c", PROBE, how], check=False,
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    fresh, settled_small, settled_large = map(int, result.stdout.split()[-3:])
    assert fresh == 1  # the probe sees the effect: a fresh process maps the buffer
    assert settled_small == 0
    assert settled_large == 0
