"""FFT sizes that FFT libraries transform fast: products of 2, 3, 5 and 7 (7-smooth numbers).

pocketfft, MKL and cuFFT all have radix-2/3/5/7 kernels, so a 7-smooth length is nearly as fast
as a power of two and often much shorter than the next power of two (4095 -> 4096, 16001 ->
16128 rather than 32768).
"""

from __future__ import annotations

from functools import lru_cache

_PRIMES = (2, 3, 5, 7)


@lru_cache(maxsize=4096)
def fast_size(n: int) -> int:
    """The smallest 7-smooth integer (a product of 2, 3, 5 and 7) that is >= ``n``.

    Args:
        n: the minimum length (values below 1 give 1).

    Returns:
        The FFT length to use for a transform of at least ``n`` samples.
    """
    if n <= 1:
        return 1
    best = 1 << (n - 1).bit_length()  # the next power of two is always a candidate
    p7 = 1
    while p7 < best:
        p5 = p7
        while p5 < best:
            p3 = p5
            while p3 < best:
                # smallest p3 * 2**k >= n
                quotient = -(-n // p3)
                candidate = p3 * (1 << (quotient - 1).bit_length())
                best = min(best, candidate)
                p3 *= 3
            p5 *= 5
        p7 *= 7
    return best


#: The steps of :func:`coarse_fast_size` within an octave, in eighths of its power of two.
_COARSE_EIGHTHS = (8, 9, 10, 12, 14)


@lru_cache(maxsize=4096)
def coarse_fast_size(n: int) -> int:
    """The smallest size >= ``n`` among five per octave, ``2**k * (1, 9/8, 5/4, 3/2, 7/4)``
    (7-smooth, at most a fifth larger than ``n``; up to 8, ``fast_size``).

    Lengths that differ by up to an eighth mostly share one size: a transform kept for one
    (a layer's weight spectrum) then serves calls of the others.
    """
    if n <= 8:
        return fast_size(n)
    unit = 1 << ((n - 1).bit_length() - 4)  # an eighth of the power of two below 2n
    return next(unit * eighths for eighths in (*_COARSE_EIGHTHS, 16) if unit * eighths >= n)


def is_fast_size(n: int) -> bool:
    """Whether ``n`` (>= 1) has no prime factor other than 2, 3, 5 and 7."""
    if n < 1:
        return False
    for p in _PRIMES:
        while n % p == 0:
            n //= p
    return n == 1


def fast_sizes(low: int, high: int) -> list[int]:
    """All 7-smooth integers in ``[low, high]``, ascending."""
    sizes = []
    n = fast_size(max(low, 1))
    while n <= high:
        sizes.append(n)
        n = fast_size(n + 1)
    return sizes
