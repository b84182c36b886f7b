"""``Limits`` ``rpm``/``tpm`` shared by every replica: one GCRA state per target in Redis.

Each bucket is one Redis key holding its *theoretical arrival time* (TAT,
GCRA: the generic cell rate algorithm): the server time, in microseconds, at
which the bucket would be full again. With capacity ``C`` per minute, one unit
costs ``T = 60 s / C``; the bucket's level at ``now`` is ``C - (TAT - now) / T``
(never above ``C``), which is exactly :class:`~evalkit.router._bucket.TokenBucket`:
one minute's budget, refilled continuously, a call larger than the whole
budget passes when the bucket is full and leaves a debt (TAT more than a
minute ahead), a correction after the call moves TAT back or forth.

* One script (:data:`TAKE`) checks and takes both buckets of a call at once:
  one round trip, and a call that one bucket refuses takes nothing from the
  other. Time is Redis's (``TIME``), because the replicas' clocks differ.
* A key expires when its bucket would be full again (plus a second): an idle
  target leaves nothing behind.
* A TPM correction after the call (:data:`CORRECT`) runs in the background
  (:meth:`RedisState.background <evalkit.router.state.RedisState.background>`),
  one batch at a time per target and replica: a batch leaves
  :data:`CORRECTION_DELAY_S` after its first correction, and corrections that
  come meanwhile (or while it is on its way) add up, so they cost far fewer
  round trips than calls. Other replicas see a correction that much later
  (5 ms of a one-minute window). Each batch is named (a key kept two
  minutes) and keeps its name until Redis confirms it, so a batch whose answer
  was lost to a timeout, sent again after Redis returns, is applied once.
  A batch still unapplied a minute after its first correction (a long
  outage) is dropped: by then the window it corrected has passed.

What a replica knows without asking (``LimitedTarget.saturated()`` must not do
I/O) is the last answer it got: a refusal's wait, until that time, and the
moment the RPM bucket has room again (nothing but takes moves it forward, so
until then a call is refused without a round trip).

While Redis is down or slow, each replica falls back to its own local buckets,
as without a state: the full ``rpm``/``tpm`` per replica, so N replicas may
send up to N times the limit for as long as the outage lasts. The local
buckets also count this replica's shared calls (and their corrections), so a
replica that used its window before the outage does not get a fresh one from
a 50 ms hiccup. The next call after the state's ``retry_interval_s`` tries
Redis again, and from its first answer on the limits are shared again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ..errors import StateUnavailableError
from ._bucket import TokenBucket, TokensTaken
from .state import RedisState, SharedScript

__all__ = ["CORRECT", "TAKE", "SharedRate"]

CORRECTION_DELAY_S = 0.005
"""How long a TPM correction waits for others to join its batch (one round trip for them all)."""
CORRECTION_MAX_AGE_S = 60.0
"""A correction not applied this long after its call is dropped (its dedupe key lives twice as long)."""

# Shared by both scripts: the clock (Redis's; the last ARGV overrides it, for tests only) and a bucket's TAT.
_PRELUDE = """
local now
if ARGV[#ARGV] ~= '' then now = tonumber(ARGV[#ARGV]) else
  local t = redis.call('TIME'); now = t[1] * 1000000 + t[2] end
local function tat_of(key)
  local tat = tonumber(redis.call('GET', key) or '')
  if tat == nil or tat < now then return now end
  return tat
end
local function store(key, tat)
  if tat <= now then redis.call('DEL', key) return end
  -- The bucket is full again at TAT: the key may vanish a second later.
  redis.call('SET', key, string.format('%.17g', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
end
"""

TAKE = SharedScript("evalkit_rate_take", _PRELUDE + """
-- KEYS: rpm, tpm. ARGV: rpm per minute (0: none), tpm per minute (0: none), tokens, now in us ('': TIME).
-- Returns {1, us until the rpm bucket has room again} when taken,
-- {0, us to wait for rpm, us to wait for tpm} when not (nothing taken).
local caps = {tonumber(ARGV[1]), tonumber(ARGV[2])}
local amounts = {1, tonumber(ARGV[3])}
local tats, costs, waits = {}, {}, {0, 0}
for i = 1, 2 do
  if caps[i] > 0 then
    costs[i] = 60000000 / caps[i]
    tats[i] = tat_of(KEYS[i])
    -- Room for min(amount, capacity): what is missing, in time; within a millionth of a unit counts as room.
    local short = tats[i] - now - (caps[i] - math.min(amounts[i], caps[i])) * costs[i]
    if short > math.max(costs[i] * 1e-6, 1) then waits[i] = math.ceil(short) end
  end
end
if waits[1] > 0 or waits[2] > 0 then return {0, waits[1], waits[2]} end
local next_rpm = 0
for i = 1, 2 do
  if caps[i] > 0 then
    local tat = tats[i] + amounts[i] * costs[i]
    store(KEYS[i], tat)
    if i == 1 then next_rpm = math.max(math.ceil(tat - now - (caps[1] - math.min(1, caps[1])) * costs[1]), 0) end
  end
end
return {1, next_rpm}
""")

CORRECT = SharedScript("evalkit_rate_correct", _PRELUDE + """
-- KEYS: tpm, this batch's name. ARGV: tpm per minute, tokens given back (negative: taken), now in us ('': TIME).
-- Level + amount, never above capacity: TAT moves back by amount * cost, not before now.
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', 120000) then return 0 end
local tat = tat_of(KEYS[1]) - tonumber(ARGV[2]) * 60000000 / tonumber(ARGV[1])
store(KEYS[1], math.max(tat, now))
return 1
""")


class SharedRate:
    """One target's RPM/TPM buckets in Redis, with local buckets for while Redis is down.

    ``take`` asks Redis (one round trip) or, while it is down, the local
    buckets; ``wait_s`` answers from what is known, without I/O. Made by
    :class:`~evalkit.router.limits.LimitedTarget` when it is given a state.
    """

    __slots__ = ("_batch", "_batches", "_clock", "_correcting", "_fix_prefix", "_keys", "_owed", "_owed_since",
                 "_rpm_until", "_until", "local_requests", "local_tokens", "rpm", "state", "tpm")

    def __init__(self, state: RedisState, name: str, rpm: float | None, tpm: float | None,
                 clock: Callable[[], float]) -> None:
        self.state = state
        self.rpm = float(rpm or 0)
        self.tpm = float(tpm or 0)
        self._keys = (state.key("rate", name, "rpm"), state.key("rate", name, "tpm"))
        self._fix_prefix = f"{state.key('rate', name, 'tpm-fix', state.replica)}:"
        self._owed = 0.0  # TPM corrections not yet sent (tokens back; negative: taken)
        self._owed_since = 0.0
        self._batch: tuple[tuple[str, str], float, float] | None = None  # sent, not confirmed: (keys, amount, since)
        self._batches = 0
        self._correcting = False
        self._clock = clock
        now = clock()
        self.local_requests = TokenBucket(rpm, now) if rpm else None
        self.local_tokens = TokenBucket(tpm, now) if tpm else None
        self._rpm_until = 0.0  # (clock) the shared RPM bucket is empty until then: refuse without asking
        self._until = 0.0  # (clock) the last refusal's wait ends then

    def __repr__(self) -> str:
        return f"SharedRate({self._keys[0].rsplit(':', 1)[0]!r}, rpm={self.rpm or None}, tpm={self.tpm or None})"

    def wait_s(self, tokens: int, now: float) -> float:
        """Seconds until a call of ``tokens`` may pass, as far as this replica knows (no I/O; 0.0: maybe now)."""
        if not self.state.up:
            return self._local_wait(tokens, now)
        until = max(self._rpm_until, self._until)
        return until - now if until > now else 0.0

    async def take(self, tokens: int) -> tuple[float | None, TokensTaken | None]:
        """Take one request and ``tokens`` now: ``(None, bucket to correct)``, or ``(seconds to wait, None)``.

        The bucket to correct is this object (the shared TPM bucket), a local
        TPM bucket when Redis was down, or ``None`` without a TPM limit.
        """
        if self.state.up:
            now = self._clock()
            if self._rpm_until > now:
                return self._rpm_until - now, None
            try:
                answer = await self.state.run(TAKE, self._keys, (self.rpm, self.tpm, tokens, ""))
            except StateUnavailableError:
                pass  # down or slow: this replica's own buckets, until Redis answers again
            else:
                now = self._clock()
                if answer[0] == 1:
                    self._rpm_until = now + answer[1] / 1e6
                    self._until = 0.0
                    self._count_locally(tokens, now)
                    return None, self if self.tpm else None
                rpm_wait, tpm_wait = answer[1] / 1e6, answer[2] / 1e6
                self._rpm_until = now + rpm_wait
                wait = max(rpm_wait, tpm_wait)
                self._until = now + wait
                return wait, None
        return self._take_local(tokens, self._clock())

    def give_back(self, amount: float) -> None:
        """Correct the shared TPM bucket after a call: ``amount`` tokens back (negative: taken), in the background."""
        if not amount:
            return
        if self.local_tokens is not None:
            self.local_tokens.wait_s(0, self._clock())  # brought to now: the correction is as of now
            self.local_tokens.give_back(amount)
        if not self._owed:
            self._owed_since = time.monotonic()
        self._owed += amount
        if not self._correcting:
            self._correcting = True
            self.state.background(self._correct)

    async def _correct(self) -> None:
        """Send what is owed, one batch at a time, until nothing is; run again by the state after an outage."""
        try:
            while True:
                if self._batch is None:
                    await asyncio.sleep(CORRECTION_DELAY_S)
                    if not self._owed:
                        self._correcting = False
                        return
                    self._batches += 1
                    keys = (self._keys[1], f"{self._fix_prefix}{self._batches}")
                    self._batch = (keys, self._owed, self._owed_since)
                    self._owed = 0.0
                keys, amount, since = self._batch
                if time.monotonic() - since <= CORRECTION_MAX_AGE_S:
                    await self.state.run(CORRECT, keys, (self.tpm, amount, ""))
                self._batch = None
        except StateUnavailableError:
            raise  # the state runs this again once Redis is back; until then corrections only add up
        except BaseException:
            self._correcting = False  # cancelled (the loop is closing): the next correction starts anew
            raise

    # -- while Redis is down: this replica's own buckets, as without a state ------------------------

    def _local_wait(self, tokens: int, now: float) -> float:
        wait = 0.0 if self.local_requests is None else self.local_requests.wait_s(1, now)
        if self.local_tokens is not None:
            wait = max(wait, self.local_tokens.wait_s(tokens, now))
        return wait

    def _count_locally(self, tokens: int, now: float) -> None:
        """A shared call counts in the local buckets too: they hold this replica's own use when Redis fails."""
        if self.local_requests is not None:
            self.local_requests.wait_s(1, now)  # brought to now, so the take is as of now
            self.local_requests.take(1)
        if self.local_tokens is not None:
            self.local_tokens.wait_s(tokens, now)
            self.local_tokens.take(tokens)

    def _take_local(self, tokens: int, now: float) -> tuple[float | None, TokensTaken | None]:
        wait = self._local_wait(tokens, now)
        if wait > 0:
            return wait, None
        if self.local_requests is not None:
            self.local_requests.take(1)
        if self.local_tokens is not None:
            self.local_tokens.take(tokens)
        return None, self.local_tokens
