"""The Lua scripts of a shared :class:`~evalkit.router.budget.BudgetLedger` (see :mod:`evalkit.router._shared_budget`).

Each runs atomically in Redis: check-and-hold is one step across replicas. Keys: the period's
totals hash, its open holds (zset: ``<nanos>|<hold id>|<target>`` scored by expiry, in Redis
server time) and its closed hold ids (zset scored by when they are forgotten).
"""

from __future__ import annotations

from .state import SharedScript

__all__ = ["CLOSE", "RESERVE"]

_PRELUDE = """
local K, Z, D = KEYS[1], KEYS[2], KEYS[3]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
-- The arguments come as one string of lines (one argument to encode, not 14); the last is a target
-- name, which may hold anything. Amounts stay decimal strings: a Lua number given to redis.call may
-- be written as 1e+15.
local arg, at = {}, 1
for i = 1, FIELDS - 1 do
  local stop = string.find(ARGV[1], '\\n', at, true)
  arg[i] = string.sub(ARGV[1], at, stop - 1)
  at = stop + 1
end
local target = string.sub(ARGV[1], at)
local tkey = 't:' .. target .. ':'
local function neg(n) if n == '0' then return '0' end return '-' .. n end
local function keep(ttl)
  if ttl ~= '' then
    redis.call('PEXPIRE', K, ttl); redis.call('PEXPIRE', Z, ttl); redis.call('PEXPIRE', D, ttl)
  end
end
"""

RESERVE = SharedScript("budget_reserve", _PRELUDE.replace("FIELDS", "14") + """
local amount, hold = arg[1], arg[5]
local member = amount .. '|' .. hold .. '|' .. target
-- Holds past their expiry belong to replicas that died mid-call: spent at the held amount (may be billed).
local gone = redis.call('ZRANGEBYSCORE', Z, '-inf', now, 'LIMIT', 0, tonumber(arg[8]))
for _, old in ipairs(gone) do
  local a = string.find(old, '|', 1, true)
  local b = string.find(old, '|', a + 1, true)
  local held, who = string.sub(old, 1, a - 1), 't:' .. string.sub(old, b + 1) .. ':'
  redis.call('ZREM', Z, old)
  redis.call('HINCRBY', K, 'reserved', neg(held)); redis.call('HINCRBY', K, 'spent', held)
  redis.call('HINCRBY', K, who .. 'reserved', neg(held)); redis.call('HINCRBY', K, who .. 'spent', held)
  redis.call('HINCRBY', K, 'open', -1); redis.call('HINCRBY', K, 'expired', 1)
  redis.call('ZADD', D, now + tonumber(arg[9]), string.sub(old, a + 1, b - 1) .. ':x')
end
-- The epoch names this copy of the period: a replica that saw another one knows Redis lost it.
local epoch = redis.call('HGET', K, 'epoch')
if not epoch then
  epoch = clock[1] .. '.' .. clock[2]
  redis.call('HSET', K, 'epoch', epoch)
end
local function restore(known, floor, mark, field)
  if known == '' or known == epoch then return end
  local have, want = tonumber(redis.call('HGET', K, mark) or '0'), tonumber(floor)
  if want > have then
    redis.call('HINCRBY', K, field, string.format('%d', want - have))
    redis.call('HSET', K, mark, floor)
  end
end
restore(arg[10], arg[11], 'restored', 'spent')
restore(arg[12], arg[13], tkey .. 'restored', tkey .. 'spent')
local got = redis.call('HMGET', K, 'spent', 'reserved', tkey .. 'spent', tkey .. 'reserved')
for i = 1, 4 do got[i] = got[i] or '0' end
if redis.call('ZSCORE', D, hold) then  -- released before it arrived (its caller gave up waiting)
  return {'abandoned', epoch, got[1], got[2], got[3], got[4]}
end
local spent, reserved, tspent, treserved = tonumber(got[1]), tonumber(got[2]), tonumber(got[3]), tonumber(got[4])
local want, limit, cap, least = tonumber(amount), tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])
local refused = nil
if spent + reserved + want > limit then refused = 'shared'
elseif cap and tspent + treserved + want > cap then refused = 'target'
elseif least and limit - spent - reserved < least then refused = 'share:shared'
elseif least and cap and cap - tspent - treserved < least then refused = 'share:target'
end
if refused then
  redis.call('HINCRBY', K, 'refused', 1)
else
  redis.call('HINCRBY', K, 'reserved', amount); redis.call('HINCRBY', K, tkey .. 'reserved', amount)
  redis.call('HINCRBY', K, 'open', 1)
  redis.call('ZADD', Z, now + tonumber(arg[6]), member)
end
keep(arg[7])
return {refused or 'ok', epoch, got[1], got[2], got[3], got[4]}
""")
"""KEYS: totals, holds, closed. ARGV[1], lines: amount, limit, target cap or '', the least amount that must be
left for the share rule or '', hold id, hold ttl ms, key ttl ms or '', sweep size, marker ttl ms, known epoch,
spent + reserved seen, known epoch of the target, its spent + reserved seen, target."""

CLOSE = SharedScript("budget_close", _PRELUDE.replace("FIELDS", "12") + """
local mode, id, cost, overrun = arg[1], arg[2], arg[3], arg[4]
local member = arg[10] .. '|' .. arg[11] .. '|' .. target
local function spend(amount, excess, counted)
  redis.call('HINCRBY', K, 'spent', amount); redis.call('HINCRBY', K, tkey .. 'spent', amount)
  if excess ~= '0' then redis.call('HINCRBY', K, 'overrun', excess); redis.call('HINCRBY', K, 'overruns', 1) end
  if counted and arg[5] == '1' then redis.call('HINCRBY', K, 'unpriced', 1) end
  if counted and arg[6] == '1' then redis.call('HINCRBY', K, 'estimated', 1) end
end
local old = redis.call('ZRANGEBYSCORE', D, '-inf', now, 'LIMIT', 0, tonumber(arg[8]))
if #old > 0 then redis.call('ZREM', D, unpack(old)) end
local outcome
if mode ~= 'add' and redis.call('ZREM', Z, member) == 1 then
  redis.call('HINCRBY', K, 'reserved', neg(arg[10])); redis.call('HINCRBY', K, tkey .. 'reserved', neg(arg[10]))
  redis.call('HINCRBY', K, 'open', -1)
  if mode == 'settle' then spend(cost, overrun, true) end
  outcome = mode
elseif redis.call('ZSCORE', D, id) then
  return 'duplicate'
elseif mode == 'release' then
  outcome = 'tombstone'  -- nothing held: the reservation never arrived (or was swept); keep it from holding
elseif mode == 'settle' and redis.call('ZSCORE', D, id .. ':x') then
  if overrun ~= '0' then spend(overrun, overrun, false) end  -- swept at the held amount: only the excess is new
  outcome = 'swept'
else
  spend(cost, overrun, true)  -- 'add', or a hold Redis lost in a restart: spent money is never dropped
  outcome = 'added'
end
redis.call('ZADD', D, now + tonumber(arg[9]), id)
keep(arg[7])
return outcome
""")
"""KEYS: totals, holds, closed. ARGV[1], lines: mode (settle, release, add), marker id, cost, overrun,
unpriced '1'/'0', estimated '1'/'0', key ttl ms or '', sweep size, marker ttl ms, held amount, hold id, target."""
