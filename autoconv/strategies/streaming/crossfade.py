"""A crossfade between two responses of one stream: the gains of its ramp, where it is, and the
mix of the two outputs (what every streaming engine's ``set_weight`` does with a ramp).

A ramp of ``N`` samples gives the ``i``-th output from its start (``i = 0 .. N - 1``) the
position ``t = (i + 1) / (N + 1)``, strictly between the old response (``t = 0``) and the new
one (``t = 1``), and mixes the two outputs with the gains

- ``linear``: ``(1 - t) * old + t * new`` (the sum of the gains is 1: a response morphing into
  a similar one keeps its level);
- ``equal_power``: ``cos(t pi / 2) * old + sin(t pi / 2) * new`` (the sum of the squared gains
  is 1: two uncorrelated responses keep their loudness).

The gains and a buffer for the old response's outputs are allocated when the crossfade is
made, so that mixing allocates nothing.
"""

from __future__ import annotations

import math
from typing import Any

import torch

#: The ramps :class:`Crossfade` knows.
RAMPS = ("linear", "equal_power")


def ramp_gains(length: int, ramp: str, dtype: torch.dtype, device: torch.device
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The old and the new response's gains over a ramp of ``length`` samples.

    Raises:
        ValueError: an unknown ``ramp``.
    """
    if ramp not in RAMPS:
        raise ValueError(f"ramp must be one of {', '.join(map(repr, RAMPS))}, not {ramp!r}")
    t = torch.arange(1, length + 1, dtype=torch.float64) / (length + 1)
    if ramp == "linear":
        old, new = 1 - t, t
    else:
        old, new = torch.cos(t * (math.pi / 2)), torch.sin(t * (math.pi / 2))
    return old.to(dtype=dtype, device=device), new.to(dtype=dtype, device=device)


class Crossfade:
    """A ramp under way from an engine's old response to its new one.

    Args:
        old: the old response (whatever the engine keeps of it; the crossfade only holds it).
        length: samples of the ramp (at least 1).
        ramp: one of :data:`RAMPS`.
        like: a full chunk's outputs ``(B, C_out, chunk)``: the shape, dtype and device of
            :attr:`scratch`.

    Attributes:
        old: as given.
        scratch: where the engine may write the old response's outputs of a chunk.
        position: samples of the ramp already mixed.
    """

    def __init__(self, old: Any, length: int, ramp: str, like: torch.Tensor) -> None:
        self.old = old
        self.length, self.position = length, 0
        self._old_gain, self._new_gain = ramp_gains(length, ramp, like.dtype, like.device)
        self.scratch = torch.empty_like(like, memory_format=torch.contiguous_format)

    @property
    def remaining(self) -> int:
        """Samples of the ramp still to come."""
        return self.length - self.position

    def old_outputs(self, n: int) -> torch.Tensor:
        """The first ``n`` samples of :attr:`scratch`."""
        return self.scratch[..., :n]

    def mix(self, old: torch.Tensor, out: torch.Tensor) -> bool:
        """Mix the old response's outputs ``old`` into ``out`` (the new one's, of the same
        samples), in place, and move the ramp on by their length.

        Returns:
            Whether the ramp is over (every later output is the new response's alone).
        """
        n, at = out.shape[-1], self.position
        take = min(n, self.length - at)
        if take > 0:
            mixed = out[..., :take]
            mixed.mul_(self._new_gain[at:at + take])
            mixed.addcmul_(old[..., :take], self._old_gain[at:at + take])
        self.position = at + take
        return self.position >= self.length
