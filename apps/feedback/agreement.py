"""Agreement and interval statistics, in plain Python (queues are small enough; no numpy at run time).

- Krippendorff's alpha (nominal, ordinal, interval) from the coincidence matrix, with missing values,
  following Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability".
- Cohen's kappa for two raters.
- Wilson score interval for a proportion (thumbs up, wins), and Student's t interval for a mean (scales).
"""

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from itertools import permutations
from statistics import NormalDist

LEVELS = ("nominal", "ordinal", "interval")


def krippendorff_alpha(units: Sequence[Sequence[Hashable | None]], level: str = "nominal") -> float | None:
    """Alpha over `units`, each the values its coders gave (None: missing). Units with fewer than two values
    are not pairable and are ignored. None when there is nothing to compare, or no variation at all
    (every value the same: alpha is undefined)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}")
    coincidences: defaultdict[tuple[Hashable, Hashable], float] = defaultdict(float)
    for unit in units:
        values = [v for v in unit if v is not None]
        m = len(values)
        if m < 2:
            continue
        for a, b in permutations(range(m), 2):
            coincidences[(values[a], values[b])] += 1 / (m - 1)
    if not coincidences:
        return None
    totals: defaultdict[Hashable, float] = defaultdict(float)
    for (c, _k), weight in coincidences.items():
        totals[c] += weight
    n = sum(totals.values())
    categories = sorted(totals, key=_order_key)
    if len(categories) < 2:
        return None
    delta = _metric(level, categories, totals)
    observed = sum(weight * delta(c, k) for (c, k), weight in coincidences.items())
    expected = sum(totals[c] * totals[k] * delta(c, k) for c in categories for k in categories)
    if expected == 0:
        return None
    return 1 - (n - 1) * observed / expected


def _order_key(value: Hashable) -> tuple[int, float | str]:
    if isinstance(value, bool):
        return (0, float(value))
    if isinstance(value, int | float):
        return (0, float(value))
    return (1, str(value))


def _metric(level: str, categories: list[Hashable], totals: dict[Hashable, float]):
    if level == "nominal":
        return lambda c, k: 0.0 if c == k else 1.0
    if level == "interval":
        return lambda c, k: (float(c) - float(k)) ** 2
    # ordinal: the squared sum of the marginals between c and k, less half of each end's
    rank = {c: i for i, c in enumerate(categories)}
    cumulative = [0.0]
    for c in categories:
        cumulative.append(cumulative[-1] + totals[c])

    def ordinal(c: Hashable, k: Hashable) -> float:
        lo, hi = sorted((rank[c], rank[k]))
        between = cumulative[hi + 1] - cumulative[lo]
        return (between - (totals[c] + totals[k]) / 2) ** 2

    return ordinal


def cohen_kappa(pairs: Sequence[tuple[Hashable, Hashable]]) -> float | None:
    """Cohen's kappa of two raters over the items both rated: (p_o - p_e) / (1 - p_e)."""
    if not pairs:
        return None
    n = len(pairs)
    observed = sum(1 for a, b in pairs if a == b) / n
    first = Counter(a for a, _ in pairs)
    second = Counter(b for _, b in pairs)
    expected = sum(first[c] * second[c] for c in first) / (n * n)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion."""
    if n <= 0:
        return None
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


# Two-sided 97.5 % quantiles of Student's t for 1 to 30 degrees of freedom (95 % intervals).
_T975 = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
]  # fmt: skip


def t_quantile_975(df: int) -> float:
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    # Cornish-Fisher expansion: exact to three decimals beyond 30 degrees of freedom.
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df * df)


def mean_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """Student's t 95 % interval of the mean (None under two values)."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = t_quantile_975(n - 1) * math.sqrt(variance / n)
    return (mean - half, mean + half)
