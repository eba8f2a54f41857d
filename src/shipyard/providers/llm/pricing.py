"""What a reply cost, from the configured price table (``prices`` of each provider).

A model without a configured price has an *unknown* cost (``None``), never 0: a missing price
must not look like a free model in reports or budgets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shipyard.providers.llm.types import ChatResult, Usage
from shipyard.settings import ModelPrice, Settings


def usage_cost(usage: Usage, price: ModelPrice | None) -> float | None:
    if price is None:
        return None
    return (
        usage.prompt_tokens * price.input_per_1k + usage.completion_tokens * price.output_per_1k
    ) / 1000.0


class PriceTable:
    """Prices by provider name, then model name (the model as written in the route)."""

    def __init__(self, prices: Mapping[str, Mapping[str, ModelPrice]] | None = None) -> None:
        self._prices = {name: dict(models) for name, models in (prices or {}).items()}

    @classmethod
    def from_settings(cls, settings: Settings) -> PriceTable:
        return cls({name: provider.prices for name, provider in settings.providers.items()})

    def price(self, provider: str, model: str) -> ModelPrice | None:
        return self._prices.get(provider, {}).get(model)

    def cost(self, result: ChatResult) -> float | None:
        return usage_cost(result.usage, self.price(result.provider, result.model))

    def total(self, results: Iterable[ChatResult]) -> float | None:
        """Sum of the costs; unknown when any part is unknown."""
        total = 0.0
        for result in results:
            cost = self.cost(result)
            if cost is None:
                return None
            total += cost
        return total
