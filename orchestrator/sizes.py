"""The size ladder: a size label ("1M") resolved to a shape, per architecture, as plain data."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from trainers.architectures import ARCHITECTURES
from trainers.architectures import non_embedding_params as _non_embedding_params


@dataclass(frozen=True)
class Shape:
    """The shape of a transformer: depth, width and heads."""

    n_layer: int
    n_embd: int
    n_head: int


# Each label is within 5% of the measured non-embedding N (tests/test_grid.py checks every
# entry). Head width stays 12-64; the smallest entries are the "debug" sizes for tests.
_DECODER = {
    "10K": Shape(1, 28, 2),
    "25K": Shape(2, 32, 2),
    "50K": Shape(4, 32, 2),
    "100K": Shape(2, 64, 4),
    "200K": Shape(4, 64, 4),
    "300K": Shape(4, 80, 5),
    "400K": Shape(5, 80, 5),
    "1M": Shape(5, 128, 4),
    "2M": Shape(8, 144, 4),
    "4M": Shape(5, 256, 8),
    "10M": Shape(8, 320, 10),
    "20M": Shape(11, 384, 12),
    "50M": Shape(16, 512, 16),
    "100M": Shape(14, 768, 12),
    "200M": Shape(16, 1024, 16),
}

# The ladders, by family; each architecture names its family in trainers/architectures.py,
# and LADDER (below) is the one table the rest of the code reads.
_FAMILIES: dict[str, dict[str, Shape]] = {
    "decoder": _DECODER,
    # an encoder block is a decoder block without the causal mask; the masked-LM head adds
    # d² + 3·d, which moves the smallest shapes more than 5% off their labels
    "encoder": _DECODER
    | {
        "10K": Shape(1, 27, 1),
        "25K": Shape(2, 31, 1),
        "300K": Shape(4, 78, 6),
    },
    # n_layer blocks in each stack; the label counts both (about 28·n_layer·d²)
    "encdec": {
        "10K": Shape(1, 18, 1),
        "25K": Shape(2, 20, 2),
        "50K": Shape(3, 24, 2),
        "100K": Shape(2, 42, 3),
        "200K": Shape(3, 48, 3),
        "300K": Shape(2, 72, 4),
        "400K": Shape(2, 84, 4),
        "1M": Shape(3, 108, 4),
        "2M": Shape(5, 120, 4),
        "4M": Shape(4, 192, 6),
        "10M": Shape(7, 224, 7),
        "20M": Shape(7, 320, 10),
        "50M": Shape(9, 448, 14),
        "100M": Shape(8, 672, 12),
        "200M": Shape(12, 768, 12),
    },
}

LADDER: dict[str, dict[str, Shape]] = {
    name: _FAMILIES[entry.ladder] for name, entry in ARCHITECTURES.items()
}  # the size ladder of each architecture: label -> shape

_UNITS = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12, "P": 10**15}
_COUNT = re.compile(r"^\s*(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*([KMBGTP]?)\s*$", re.IGNORECASE)


MAX_COUNT = 2**63  # a SQLite store's integers are signed 64-bit


def parse_count(value: int | float | str) -> int:
    """A count written as 600000, 6e5, "600K", "1.5M" or "2B" (decimal units)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a count")
    if isinstance(value, int):  # exactly, however large
        if value <= 0:
            raise ValueError(f"{value!r} is not a positive whole number")
        return value
    if isinstance(value, float):
        number = value
    else:
        match = _COUNT.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a count like 600000, '600K' or '1.5M'")
        number = float(match.group(1)) * _UNITS[match.group(2).upper()]
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite count")
    if number <= 0 or abs(number - round(number)) > 1e-9 * number:  # "2.01M" is 2010000.0000002
        raise ValueError(f"{value!r} is not a positive whole number")
    return int(round(number))


def storable_count(value: int) -> int:
    """A count the store keeps as an integer (tokens, parameters): below 2^63."""
    if value >= MAX_COUNT:
        raise ValueError(f"{value} is beyond the largest count a store keeps (2^63 - 1)")
    return value


def format_count(n: int) -> str:
    """A short label for a count: 25472 -> "25K", 991616 -> "992K", 2500000 -> "2.5M"."""
    for unit, scale in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= scale:
            value = n / scale
            text = f"{value:.3g}" if value < 1000 else f"{value:.0f}"
            return f"{text}{unit}"
    return str(n)


def flops_text(flops: float) -> str:
    """A FLOP count, short: 1e12 -> "1e12", 2.5e11 -> "2.5e11"."""
    mantissa, _, exponent = f"{flops:.3g}".partition("e")
    return f"{mantissa}e{int(exponent)}" if exponent else mantissa


def non_embedding_params(architecture: str, shape: Shape) -> int:
    """N of an architecture at a shape, from the accounting formulas."""
    return _non_embedding_params(architecture, shape.n_layer, shape.n_embd)
