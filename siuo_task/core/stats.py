"""Paired statistics for two models graded on the same items (pure stdlib, no harness imports).

Each item gives a pair of binary outcomes (A, B); the 2x2 table of pairs is

    n11 = both 1      n10 = A 1, B 0
    n01 = A 0, B 1    n00 = both 0

- :func:`mcnemar_exact_p`: the exact (conditional) McNemar test: under "no difference" the
  discordant pairs split as Binomial(n10 + n01, 1/2); the two-sided p-value is twice the smaller
  tail, capped at 1 (computed with integers, exactly).
- :func:`newcombe_paired_ci`: the 95% interval for the paired difference p_A - p_B by Newcombe's
  hybrid score method without continuity correction ("method 10" of R. G. Newcombe, Improved
  confidence intervals for the difference between binomial proportions based on paired data,
  Statistics in Medicine 17:2635-2650, 1998; recommended by M. W. Fagerland, S. Lydersen and
  P. Laake, Recommended tests and confidence intervals for paired binomial proportions,
  Statistics in Medicine 33:2850-2875, 2014). It combines the Wilson score intervals of the two
  marginal proportions with the phi correlation of the pairs; unlike the Wald interval it stays
  inside [-1, 1] and behaves at 0 or 1 discordant pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from siuo_task.core.metrics import Z95, wilson_bounds  # the one Wilson formula, shared with every rate's interval


@dataclass(frozen=True)
class PairedTable:
    n11: int  # both 1
    n10: int  # A 1, B 0
    n01: int  # A 0, B 1
    n00: int  # both 0

    @property
    def n(self) -> int:
        return self.n11 + self.n10 + self.n01 + self.n00

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple]) -> PairedTable:
        counts = {(1, 1): 0, (1, 0): 0, (0, 1): 0, (0, 0): 0}
        for a, b in pairs:
            if (a, b) not in counts or isinstance(a, bool) or isinstance(b, bool):
                raise ValueError(f"paired outcomes must be 0 or 1, got ({a!r}, {b!r})")
            counts[(a, b)] += 1
        return cls(counts[(1, 1)], counts[(1, 0)], counts[(0, 1)], counts[(0, 0)])


def mcnemar_exact_p(n10: int, n01: int) -> float:
    """Two-sided exact McNemar p-value: ``min(1, 2 * P(X <= min(n10, n01)))``, X ~ Bin(n10 + n01, 1/2)."""
    if n10 < 0 or n01 < 0:
        raise ValueError("discordant counts must be >= 0")
    m = n10 + n01
    if m == 0:
        return 1.0
    k = min(n10, n01)
    tail = Fraction(sum(math.comb(m, i) for i in range(k + 1)), 2**m)
    return float(min(Fraction(1), 2 * tail))


def phi_coefficient(table: PairedTable) -> float:
    """Pearson's phi of the 2x2 table; 0 when a margin is empty (Newcombe's convention)."""
    a, b, c, d = table.n11, table.n10, table.n01, table.n00
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    if margins == 0:
        return 0.0
    return (a * d - b * c) / math.sqrt(margins)


def newcombe_paired_ci(table: PairedTable, z: float = Z95) -> tuple | None:
    """95% interval ``(low, high)`` for ``p_A - p_B`` (proportions), Newcombe's method 10; ``None`` if n = 0.

    With p1 = (n11 + n10)/n, p2 = (n11 + n01)/n, their Wilson intervals (l1, u1), (l2, u2) and phi:

        low  = (p1 - p2) - sqrt((p1 - l1)^2 - 2 phi (p1 - l1)(u2 - p2) + (u2 - p2)^2)
        high = (p1 - p2) + sqrt((u1 - p1)^2 - 2 phi (u1 - p1)(p2 - l2) + (p2 - l2)^2)
    """
    n = table.n
    if n == 0:
        return None
    x1, x2 = table.n11 + table.n10, table.n11 + table.n01
    p1, p2 = x1 / n, x2 / n
    l1, u1 = wilson_bounds(x1, n, z)
    l2, u2 = wilson_bounds(x2, n, z)
    phi = phi_coefficient(table)
    delta = p1 - p2
    low = delta - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = delta + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, low), min(1.0, high)
