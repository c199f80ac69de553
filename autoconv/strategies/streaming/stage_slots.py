"""When each stage of a non-uniformly partitioned stream does its work: the *slots* of a
stage's block, one per chunk of it.

A stage of partition ``P`` computes, during the ``P / chunk`` chunks of one block, the
outputs of the next block: the transform of the last two blocks of input, which joins the
spectra of past windows; the products of its partitions (any number of them at a time); the
inverse transform, added to the outputs ahead. These tasks keep their order; this module
assigns them to the block's slots so that the busiest chunk of the whole period does as
little as it can (no more than the largest transform of the largest stage, where possible),
and otherwise as early as it can: fewer slots with work mean fewer torch operations per
chunk on average. A transform is not split by rows: torch's CPU transforms of one row of
16k samples or more take as long as two rows, so the pieces would cost more than the whole.

Stages are placed smallest first; each sees the load the smaller ones put on every chunk of
its block (their blocks divide its block, so their load repeats within it) and fills, slot
by slot, up to the lowest ceiling under which all its tasks fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

#: Rough cost of one torch operation, in the units of the costs below (floating-point
#: operations): its dispatch, a few microseconds.
OP_COST = 10_000.0


class Slot(NamedTuple):
    """The work of one chunk of a stage's block, done in this order.

    Attributes:
        fft: transform the window that ended with the last block; it joins the spectra of
            past windows.
        mac: partitions ``(first, end)`` multiplied and accumulated, or None.
        ifft: transform the sum back and add it to the outputs ahead.
    """

    fft: bool = False
    mac: tuple[int, int] | None = None
    ifft: bool = False


EMPTY = Slot()


@dataclass(frozen=True)
class StageWork:
    """What one stage does per block, in the units of :data:`OP_COST`.

    Attributes:
        slots: chunks per block (``P / chunk``).
        fft_size: its transform length.
        rows_in, rows_out: rows of the input and output transforms.
        partitions: products to accumulate.
        partition_cost: the cost of one partition's products.
    """

    slots: int
    fft_size: int
    rows_in: int
    rows_out: int
    partitions: int
    partition_cost: float

    def _transform(self, rows: int) -> float:
        size = self.fft_size
        return 2.5 * size * max(size.bit_length() - 1, 1) * rows + OP_COST

    @property
    def fft_cost(self) -> float:
        """The forward transform and its entry among the spectra (two copies)."""
        return self._transform(self.rows_in) + 2 * OP_COST

    @property
    def ifft_cost(self) -> float:
        """The inverse transform and its sum into the outputs ahead."""
        return self._transform(self.rows_out) + OP_COST + self.rows_out * self.fft_size / 2

    @property
    def total(self) -> float:
        return (self.fft_cost + self.ifft_cost
                + self.partitions * (self.partition_cost + 2 * OP_COST))


def _fill(work: StageWork, base: Sequence[float], ceiling: float) -> list[Slot] | None:
    """The tasks of ``work`` in order, each slot filled up to ``ceiling`` over ``base``;
    None when they do not fit in the block."""
    load = list(base)
    slots = [EMPTY] * work.slots
    index = 0

    def place(cost: float) -> bool:
        nonlocal index
        while index < work.slots and load[index] + cost > ceiling:
            index += 1
        if index < work.slots:
            load[index] += cost
        return index < work.slots

    if not place(work.fft_cost):
        return None
    slots[index] = slots[index]._replace(fft=True)
    done = 0
    while done < work.partitions:
        if index == work.slots:
            return None
        room = ceiling - load[index] - 2 * OP_COST
        count = min(work.partitions - done, int(room // work.partition_cost)) \
            if room >= work.partition_cost else 0
        if count:
            slots[index] = slots[index]._replace(mac=(done, done + count))
            load[index] += 2 * OP_COST + count * work.partition_cost
            done += count
        if done < work.partitions:
            index += 1
    if not place(work.ifft_cost):
        return None
    slots[index] = slots[index]._replace(ifft=True)
    return slots


def _cost(work: StageWork, slot: Slot) -> float:
    cost = (work.fft_cost if slot.fft else 0.0) + (work.ifft_cost if slot.ifft else 0.0)
    if slot.mac:
        cost += 2 * OP_COST + (slot.mac[1] - slot.mac[0]) * work.partition_cost
    return cost


def schedule(stages: Sequence[StageWork]) -> list[tuple[Slot, ...]]:
    """The slots of each stage (given smallest first, each block a multiple of the one
    before), see the module docstring."""
    if not stages:
        return []
    floor = max(max(work.fft_cost, work.ifft_cost) for work in stages)
    load = [0.0] * stages[-1].slots
    result = []
    for work in stages:
        base = load[:work.slots]
        slots = _fill(work, base, floor)
        if slots is None:  # the lowest ceiling above the floor, by bisection
            low, high = floor, max(base) + work.total
            slots = _fill(work, base, high)  # everything fits in the first slot
            for _ in range(30):
                middle = (low + high) / 2
                attempt = _fill(work, base, middle)
                if attempt is None:
                    low = middle
                else:
                    high, slots = middle, attempt
        if slots is None:
            raise AssertionError("a stage's work does not fit under its own total")
        for index, slot in enumerate(slots):
            cost = _cost(work, slot)
            for repeat in range(index, len(load), work.slots):
                load[repeat] += cost
        result.append(tuple(slots))
    return result
