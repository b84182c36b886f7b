"""The Lua scripts of a shared circuit breaker (see :mod:`evalkit.router._shared_breaker`).

Each runs atomically in Redis on Redis server time, so replicas' clocks never need to agree.
KEYS: the breaker's hash (``until``, ``epoch``, ``by``) and, where a probe is involved, its probe key.
"""

from __future__ import annotations

from .state import SharedScript

__all__ = ["CLOSE", "OPEN", "PROBE", "READ", "RELEASE"]

# Every script reads the breaker as (until, epoch): until is Redis time in ms when the open state
# ends (0: closed; in the past: half-open), epoch is Redis time in µs of the last transition.
# Numbers are written with %d: Lua would print a µs timestamp in exponent form.
_READ_ONE = """
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(now_us / 1000)
local keep = 86400000
local s = redis.call('HMGET', KEYS[1], 'until', 'epoch')
local til, epoch = tonumber(s[1]) or 0, tonumber(s[2]) or 0
"""

OPEN = SharedScript("breaker_open", _READ_ONE + """
local ms = tonumber(ARGV[1])
local changed = 0
if til <= now then  -- closed, or half-open: a new opening; a probe in flight is void
  changed = 1
  epoch = math.max(epoch + 1, now_us)
  til = now + ms
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'until', string.format('%d', til), 'epoch', string.format('%d', epoch),
             'by', ARGV[2])
elseif now + ms > til then  -- open already: extended
  changed = 2
  til = now + ms
  redis.call('HSET', KEYS[1], 'until', string.format('%d', til))
end
redis.call('PEXPIRE', KEYS[1], string.format('%d', til - now + keep))
return {changed, epoch, til - now}
""")

CLOSE = SharedScript("breaker_close", _READ_ONE + """
if til == 0 then return {0, epoch, -1} end
if epoch ~= tonumber(ARGV[1]) then return {0, epoch, math.max(til - now, 0)} end  -- reopened since
epoch = math.max(epoch + 1, now_us)
redis.call('HSET', KEYS[1], 'until', '0', 'epoch', string.format('%d', epoch))
redis.call('DEL', KEYS[2])
redis.call('PEXPIRE', KEYS[1], keep)
return {1, epoch, -1}
""")

PROBE = SharedScript("breaker_probe", _READ_ONE + """
if til == 0 then return {0, epoch, -1} end
if til > now then return {0, epoch, til - now} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, epoch, 0} end
return {2, epoch, math.max(redis.call('PTTL', KEYS[2]), 1)}
""")

RELEASE = SharedScript("breaker_release", """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")

READ = SharedScript("breaker_read", """
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(now_us / 1000)
local out = {}
for _, key in ipairs(KEYS) do
  local s = redis.call('HMGET', key, 'until', 'epoch')
  local til, epoch = tonumber(s[1]) or 0, tonumber(s[2]) or 0
  out[#out + 1] = epoch
  out[#out + 1] = til == 0 and -1 or math.max(til - now, 0)
end
return out
""")
