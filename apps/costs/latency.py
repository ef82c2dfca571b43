"""A mergeable latency histogram: fixed log-spaced buckets, so per-hour histograms add up to the exact
histogram of any range, and percentiles are read from the merged counts (never a percentile of averages).

Buckets grow by 5 % from 1 ms to about 20 minutes (~290 buckets): a percentile is reported as its
bucket's upper bound, at most 5 % above the true value. Stored sparse, as {bucket index: count}.
"""

import math
from collections.abc import Iterable, Mapping

GROWTH = 1.05
MAX_BUCKET = 290


def bucket_of(latency_ms: float) -> int:
    if latency_ms <= 1:
        return 0
    return min(MAX_BUCKET, math.ceil(math.log(latency_ms) / math.log(GROWTH)))


def upper_bound(bucket: int) -> float:
    return GROWTH**bucket


def merge(histograms: Iterable[Mapping[str, int] | Mapping[int, int]]) -> dict[int, int]:
    total: dict[int, int] = {}
    for histogram in histograms:
        for bucket, count in histogram.items():
            total[int(bucket)] = total.get(int(bucket), 0) + count
    return total


def percentile(histogram: Mapping[str, int] | Mapping[int, int], q: float) -> float | None:
    """The q-th percentile (0 < q ≤ 100) in ms, or None for an empty histogram."""
    items = sorted((int(b), c) for b, c in histogram.items() if c)
    count = sum(c for _, c in items)
    if not count:
        return None
    rank = max(1, math.ceil(q / 100 * count))
    seen = 0
    for bucket, c in items:
        seen += c
        if seen >= rank:
            return round(upper_bound(bucket), 1)
    return round(upper_bound(items[-1][0]), 1)
