"""Prices in effect: what an event costs when it is stored. Read-only; used by the logs pipeline."""

from bisect import bisect_right
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from apps.costs.models import Price, PriceKind

THOUSAND = Decimal(1000)


class PriceBook:
    """The token prices of some models over time, loaded in one query."""

    def __init__(self, models: Iterable[str]):
        self._by_key: dict[str, list[Price]] = {}
        for price in Price.objects.filter(kind=PriceKind.TOKENS, key__in=set(models)).order_by(
            "key", "effective_from"
        ):
            self._by_key.setdefault(price.key, []).append(price)
        self._starts = {key: [p.effective_from for p in prices] for key, prices in self._by_key.items()}

    def price_at(self, model: str, at: datetime) -> Price | None:
        prices = self._by_key.get(model)
        if not prices:
            return None
        index = bisect_right(self._starts[model], at) - 1
        if index < 0:
            return None
        price = prices[index]
        if price.effective_to is not None and at >= price.effective_to:
            return None
        return price

    def cost(self, model: str, at: datetime, tokens_in: int | None, tokens_out: int | None) -> Decimal | None:
        """The cost of one call, or None when no price is in effect (an *unpriced* model, never zero)."""
        price = self.price_at(model, at)
        if price is None:
            return None
        return (price.input_per_1k * (tokens_in or 0) + price.output_per_1k * (tokens_out or 0)) / THOUSAND
