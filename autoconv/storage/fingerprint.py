"""What makes this machine this machine, for tuning purposes.

A measurement is only trusted as this device's winner when it was taken on a device with the
same fingerprint: the same CPU model and thread count, the same GPU and driver, the same torch,
CUDA, cuDNN, MKL and oneDNN versions. The fields are collected here (this module knows torch);
the record and its stable hash live in ``tuning_db`` (which does not).
"""

from __future__ import annotations

import functools
import os
import platform
import re
from typing import Any

import torch

from autoconv import __version__


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _library_version(pattern: str) -> str | None:
    match = re.search(pattern, torch.__config__.show())
    return match.group(1) if match else None


def _cuda_driver_version() -> str | None:
    get_version = getattr(torch._C, "_cuda_getDriverVersion", None)
    return str(get_version()) if get_version is not None else None


@functools.cache
def _static_fields() -> dict[str, Any]:
    return {
        "cpu_model": _cpu_model(),
        "cpu_cores": _cpu_cores(),
        "torch_version": torch.__version__,
        "mkl_version": _library_version(r"Math Kernel Library Version ([\w.\-]+)"),
        "onednn_version": _library_version(r"(?:MKL-DNN|oneDNN) v([\w.]+)"),
        "platform": f"{platform.system()}-{platform.machine()}",
        "autoconv_version": __version__,
    }


def fingerprint_fields(device: torch.device) -> dict[str, Any]:
    """The fingerprint of ``device`` in this process, as plain data.

    CPU devices record the CPU and the torch thread count; CUDA devices additionally record the
    GPU name, compute capability, driver (runtime) and cuDNN versions.
    """
    fields = dict(_static_fields())
    fields["torch_threads"] = torch.get_num_threads()
    fields.update(gpu_name=None, compute_capability=None, driver_version=None,
                  cuda_version=None, cudnn_version=None)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        fields.update(gpu_name=torch.cuda.get_device_name(index),
                      compute_capability=f"{major}.{minor}",
                      driver_version=_cuda_driver_version(),
                      cuda_version=torch.version.cuda,
                      cudnn_version=str(cudnn) if cudnn is not None else None)
    return fields


def device_key(device: torch.device) -> tuple[str, int | None, int]:
    """What a device's fingerprint (and so its fitted model) depends on in this process: the
    device and the current thread count."""
    return device.type, device.index, torch.get_num_threads()
