"""matplotlib for the report: loaded headless (or a :class:`ReportError` that says how to
install it), figures written as PNG and closed, and the report's shared labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class ReportError(ValueError):
    """The report cannot be made (no data for this device, matplotlib missing)."""


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the headless Agg backend.

    Raises:
        ReportError: matplotlib is not installed.
    """
    try:
        import matplotlib
    except ImportError:
        raise ReportError("the report needs matplotlib: pip install 'autoconv[report]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(figure: Any, path: Path, dpi: int = 110) -> None:
    """Write ``figure`` to ``path`` as a PNG, then close it (pyplot keeps open figures)."""
    figure.savefig(path, dpi=dpi)
    pyplot().close(figure)


def samples_text(count: int) -> str:
    """A length as people write it: 256, 512, 1k, 2k, ... 256k."""
    return f"{count // 1024}k" if count >= 1024 and count % 1024 == 0 else str(count)


def factor_text(value: float) -> str:
    """A ratio as a tick or bar label: ``0.5x``, ``1x``, ``20x``, ``1,000x``."""
    return f"{value:,.0f}x" if value >= 1 and value == round(value) else f"{value:g}x"
