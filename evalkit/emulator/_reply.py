"""The reply to a valid call to a served model, given the fault it drew.

In the order a real service fails: a reset drops the connection; an HTTP error
fault (429, 5xx) answers before the request is looked at; then the checks that
need the model (a prompt past its context window, a prefill it refuses) answer
400; otherwise the model generates, and the fault shapes the 200 (its timing,
its body, the way it ends).
"""

from __future__ import annotations

import dataclasses

from ._plans import BodyFault, error_plan, json_plan, stream_plan
from ._prefill import prefill_of, refusal
from ._rate_limits import Admission
from ._responses import ReplyPlan
from ._simulate import ChatCall, Timing
from ._specs import ModelSpec
from ._state import EmulatorState
from ._stats import RequestRecord
from ._wire_base import WireRenderer
from ._wire_common import ErrorInfo, HttpReply, RateSnapshot, ReplyContext
from .faults import FaultStep

__all__ = ["answer_plan", "rate_limited_plan"]

_HTTP_ERROR_FAULTS = {
    "429": "rate_limit",
    "500": "server",
    "502": "bad_gateway",
    "503": "unavailable",
    "529": "overloaded",
}


def answer_plan(
    state: EmulatorState,
    wire: WireRenderer,
    rec: RequestRecord,
    call: ChatCall,
    spec: ModelSpec,
    step: FaultStep | None,
    attempt: int,
    request_id: str,
    rate: RateSnapshot,
) -> ReplyPlan:
    """The plan for a valid call to a served model, given the fault (``step``) it drew.

    ``rate`` is the model's budget after this call was metered (``RateBuckets.take``).
    """
    kind = step.kind if step else None
    rec.fault = kind
    prefill = prefill_of(call)
    rec.prefill_chars = None if prefill is None else len(prefill)
    ctx = ReplyContext(spec.name, request_id, rate, call)
    if kind == "reset":
        rec.status = "reset"
        return ReplyPlan(0, [], ending="reset")
    refused = _error_reply(state, wire, ctx, rec, spec, step, prefill is not None)
    if refused is not None:
        rec.status = str(refused.status)
        return error_plan(refused)
    outcome = kind if kind in ("content_filter", "empty") else None
    gen = state.simulator.generate(call, spec, attempt, outcome=outcome)
    if kind == "slow_first_token":
        # Nothing before the first token for ttft_s (never less than the model's own TTFT); the
        # rest keeps its pace. A non-streamed answer waits for the same first token.
        held = max(state.ttft_seconds(step, spec), gen.timing.ttft_s)
        gen.timing = Timing(held, gen.timing.per_token_s)
    rec.status = "200"
    rec.completion_tokens, rec.cached_tokens = gen.usage.completion, gen.usage.cached
    rec.answer, rec.item_id = gen.answer_kind, gen.item_id
    rec.scheduled = {"ttft_s": gen.timing.ttft_s, "total_s": gen.total_s}
    fault = BodyFault(kind, state.stall_seconds(step, spec), state.after_tokens(step, spec))
    return (stream_plan if call.stream else json_plan)(gen, wire, ctx, fault)


def rate_limited_plan(
    wire: WireRenderer, rec: RequestRecord, call: ChatCall, spec: ModelSpec, admission: Admission, request_id: str
) -> ReplyPlan:
    """The vendor's 429 for a call the model's enforced rate limits had no room for.

    Nothing else happens to such a call, as at a vendor's gateway: no fault is drawn, no
    script step consumed, no attempt counted.
    """
    rec.status, rec.rate_limited = "429", admission.refused
    info = ErrorInfo(
        retry_after=admission.retry_after_s, rate_budget=admission.refused, requested_tokens=admission.tokens
    )
    return error_plan(wire.error("rate_limit", ReplyContext(spec.name, request_id, admission.snapshot, call), info))


def _error_reply(
    state: EmulatorState,
    wire: WireRenderer,
    ctx: ReplyContext,
    rec: RequestRecord,
    spec: ModelSpec,
    step: FaultStep | None,
    prefilled: bool,
) -> HttpReply | None:
    """The error the call gets instead of an answer, if any: an HTTP error fault, then the model's 400s."""
    kind = step.kind if step else None
    error_kind = _HTTP_ERROR_FAULTS.get(kind or "")
    if error_kind is None and (kind == "context_length" or rec.prompt_tokens > spec.context_window):
        error_kind = "context_length"
    if error_kind is not None:
        info = ErrorInfo(
            retry_after=state.retry_after(step, spec),
            prompt_tokens=rec.prompt_tokens,
            context_window=spec.context_window,
        )
        if error_kind == "rate_limit":  # an injected 429 says the requests ran out until its Retry-After
            ctx = dataclasses.replace(ctx, rate=ctx.rate.exhausted(info.retry_after or 0.0))
        return wire.error(error_kind, ctx, info)
    if prefilled and step is not None and step.prefill == "reject":
        message, param = refusal(wire.name)
        return wire.error("bad_request", ctx, ErrorInfo(message=message, param=param))
    return None
