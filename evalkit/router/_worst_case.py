"""What one call to a cost candidate may bill: the worst case reserved before it, what is settled after.

Before the call, :class:`~evalkit.router.cost.CostAwareRouter` reserves in its
:class:`~evalkit.router.budget.BudgetLedger` the worst case of one request
times the candidate's fan-out:

* input: the prompt's tokens counted locally (:class:`PromptTokens`: system
  prompt, messages, tool schemas, tool-call arguments, a JSON schema), plus a
  safety margin (the router's ``input_margin_percent`` and
  ``input_pad_tokens``), because counts for non-OpenAI models are
  approximations and chat framing differs per vendor; priced at the dearest
  input category (cache writes cost more than input);
* output: every output token the vendor can bill for the request, visible and
  reasoning/thinking (:func:`evalkit.providers.output_bound`): ``max_tokens`` on
  OpenAI, Anthropic and most compatible servers, where reasoning is inside the
  cap; plus the thinking budget where the vendor bills thinking beyond it
  (Gemini, DeepSeek's reasoner); priced at the dearest of output and reasoning;
* times the candidate's fan-out (:func:`~evalkit.router._base.fan_out`): a
  ``HedgedRouter`` may send ``1 + max_hedges`` billed requests for one call.

After the call, :func:`settle` turns the reservation into what every request
the call sent may be billed (the attempts it added): known costs as they are,
a cut stream's estimated cost (marked ``estimated`` in the ledger), and for a
request whose cost is unknown (a cancelled hedge loser, an unpriced answer)
one request's worst case, kept as spent. Only a call that billed nothing is
released. Sequential failures inside a nested router that are billed (a chain
retrying after a cut stream) are settled too, but were not reserved
beforehand: they show as ``overrun`` in the ledger's snapshot, so prefer leaf
candidates, or hedges, under a tight cap.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Callable, NamedTuple

from ..pricing import Prices
from ..providers import Priced, output_bound
from ..tokens import count_tokens, encoding_for
from ..types import Attempt, ChatRequest, Message
from ._base import Target, fan_out
from .budget import Reservation
from .hedge import CANCELLED  # a hedge loser: sent, its cost unknown unless it had answered

__all__ = ["PricedTarget", "PromptTokens", "Quote", "settle"]


class Quote(NamedTuple):
    """One candidate's worst-case cost for one request, as the router would reserve it."""

    target: str
    quality: float
    input_tokens: int
    """Estimated prompt tokens, safety margin included."""
    max_tokens: int
    worst_case: Decimal
    """What the ledger reserves: one request's worst case times ``fan_out``."""
    output_tokens: int = 0
    """The most output tokens one request can bill: ``max_tokens`` plus any thinking billed beyond it."""
    fan_out: int = 1
    """Billed requests one call can send at once (a hedge's branches)."""


class PricedTarget:
    """A target with what its worst case needs: prices per 1M tokens, output bound, fan-out, tokenizer.

    ``explicit`` prices were given by the caller and never change; otherwise
    :meth:`rates` follows the target's own ``prices()`` (:class:`~evalkit.providers.Priced`).
    """

    __slots__ = ("_lookup", "_rates", "bound", "explicit", "fan_out", "name", "target", "tokenizer")

    def __init__(self, target: Target, prices: Prices, explicit: bool) -> None:
        self.target, self.name, self.explicit = target, target.name, explicit
        # A target without prices() keeps the ones it was given, as explicit ones.
        self._lookup: Callable[[], Prices | None] | None = (
            target.prices if not explicit and isinstance(target, Priced) else None)
        # Which tokenizer counts this target's prompts: candidates sharing one share a count.
        self.tokenizer = encoding_for(self.name)
        self._rates = _worst_rates(prices)
        # How the vendor bills output and how many requests one call sends: both fixed by the target tree.
        self.bound = output_bound(target)
        self.fan_out = fan_out(target)

    def rates(self) -> tuple[Prices, Decimal, Decimal]:
        """(prices, input, output) at current prices; a target that lost its price keeps its last one."""
        rates = self._rates
        if self._lookup is not None:
            current = self._lookup()
            if current is not None and current is not rates[0]:
                # One tuple swapped in at once, so threads sharing the router see old or new, never a mix.
                rates = self._rates = _worst_rates(current)
        return rates


def _worst_rates(prices: Prices) -> tuple[Prices, Decimal, Decimal]:
    inputs = [p for p in (prices.input, prices.cached_input, prices.cache_write) if p is not None]
    outputs = [p for p in (prices.output, prices.reasoning) if p is not None]
    return prices, max(inputs), max(outputs)


class PromptTokens:
    """The request's prompt tokens, counted at most once per tokenizer."""

    __slots__ = ("_counts", "extra", "messages")

    def __init__(self, request: ChatRequest) -> None:
        messages = list(request.messages)
        if request.system:
            messages.insert(0, Message("system", request.system))
        self.messages = messages
        self.extra = _unframed_text(request)
        self._counts: dict[tuple[str, bool], int] = {}

    def count(self, target: PricedTarget) -> int:
        """The prompt's tokens as ``target``'s tokenizer counts them (no margin)."""
        counted = self._counts.get(target.tokenizer)
        if counted is None:
            counted = count_tokens(self.messages, target.name).count
            if self.extra:
                counted += count_tokens(self.extra, target.name).count
            self._counts[target.tokenizer] = counted
        return counted


def _unframed_text(request: ChatRequest) -> str:
    """Prompt text that ``count_tokens`` does not see in messages: tools, tool calls, a JSON schema."""
    parts = [call.arguments for m in request.messages if m.tool_calls for call in m.tool_calls]
    if request.tools:
        parts.append(json.dumps([[t.name, t.description, t.parameters] for t in request.tools], default=str))
    schema = request.response_format
    if schema is not None and schema != "json":
        parts.append(json.dumps(schema, default=str))
    return "\n".join(parts) if parts else ""


def settle(reservation: Reservation, sent: list[Attempt], per_request: Decimal) -> None:
    """Settle ``reservation`` to what the attempts of one call may be billed, or release it if nothing.

    A request's known cost counts as is (estimated when its usage was counted
    locally, as for a cut stream); a request that may be billed at an unknown
    cost (an unpriced answer, a failure that reports usage without a price, a
    hedge loser cancelled mid-flight) keeps its worst case, ``per_request``.
    When every billed request's cost is unknown and together they cover the
    reservation, it is kept whole and counted as ``unpriced``.
    """
    known, priced, unknown, estimated = Decimal(0), 0, 0, False
    for attempt in sent:
        if not attempt.sent:
            continue
        if attempt.cost is not None:
            known += attempt.cost.total
            priced += 1
            estimated = estimated or (attempt.usage is not None and not attempt.usage.exact)
        elif attempt.ok or attempt.usage is not None or attempt.error_kind == CANCELLED:
            unknown += 1
    if not priced and not unknown:
        reservation.release()  # nothing was generated, nothing is billed
    elif not priced and unknown * per_request >= reservation.amount:
        reservation.settle(None)  # unpriced: keep the whole worst case
    elif unknown:
        reservation.settle(known + unknown * per_request, estimated=True)
    else:
        reservation.settle(known, estimated=estimated)
