"""The Lua scripts of ``agents.budget``: every check-and-update of a run's budget is one script,
so it is atomic across threads, processes and machines.

KEYS (every script): the state hash, the reservations hash (reservation id -> "usd:tokens"),
the set of settled reservation ids. State fields: ``id`` (the budget's id: a hash carrying
another is not ours), ``lu``/``lt`` limits in micro-USD and tokens (-1 = unlimited), ``su``/``st``
spent, ``ru``/``rt`` reserved, ``ex`` the exhausted flag, ``nc``/``so`` how many settled calls
reported their output tokens and how many output tokens those were (the running average a
call's likely size is estimated from, ``agents.budget_calls``).
"""

from __future__ import annotations

# The TTL is always the last ARGV.
_EXPIRE = """
for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[#ARGV]) end
"""

# A state hash is ours only if its ``id`` field names this budget: anything else (missing, or
# written by someone else under the same key) counts as uninitialized and is never trusted.
_OWNED = """
local function owned()
  return redis.call('HGET', KEYS[1], 'id') == ARGV[1]
end
"""

# Rebuild from the database's truth, only where no state of ours exists (so two workers that
# both find the state missing cannot overwrite a settle that came in between; see
# Budget.rebuild). ARGV: id, lu, lt, su, st, ex, ttl, nc, so, settled ids... Returns 1 if
# written.
REBUILD = (
    _OWNED
    + """
if owned() then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'lu', ARGV[2], 'lt', ARGV[3], 'su', ARGV[4],
  'st', ARGV[5], 'ru', 0, 'rt', 0, 'ex', ARGV[6], 'nc', ARGV[8], 'so', ARGV[9])
for i = 10, #ARGV, 5000 do
  redis.call('SADD', KEYS[3], unpack(ARGV, i, math.min(i + 4999, #ARGV)))
end
for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[7]) end
return 1
"""
)

# Reserve for one call: as much as its upper bound (ARGV usd, tokens) if that fits, else what is
# left of the budget as long as that still covers the call's likely size (ARGV min_usd,
# min_tokens): the caller caps the call's output to what was granted, so whatever the call
# costs stays within its reservation. ARGV: id, rid, usd, tokens, min_usd, min_tokens, ttl.
# Returns {code, granted usd, granted tokens}. Code 1: reserved, or already was (a pending id
# gets its standing grant; a settled one reserves nothing more and reads as granted in full).
# Code 2: refused, but the likely size fits once the calls in flight settle. Code 0: refused
# for good (marked exhausted, or it cannot fit even with nothing in flight). -1: uninitialized.
RESERVE_CALL = (
    _OWNED
    + """
if not owned() then return {-1, 0, 0} end
local held = redis.call('HGET', KEYS[2], ARGV[2])
if held then
  local u, t = string.match(held, '^(%d+):(%d+)$')
  return {1, tonumber(u), tonumber(t)}
end
local want_u, want_t = tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 1 then return {1, want_u, want_t} end
local s = redis.call('HMGET', KEYS[1], 'lu', 'lt', 'su', 'st', 'ru', 'rt', 'ex')
if tonumber(s[7]) == 1 then return {0, 0, 0} end
local lu, lt = tonumber(s[1]), tonumber(s[2])
local su, st, ru, rt = tonumber(s[3]), tonumber(s[4]), tonumber(s[5]), tonumber(s[6])
local min_u, min_t = tonumber(ARGV[5]), tonumber(ARGV[6])
local gu, gt = want_u, want_t
if lu >= 0 then gu = math.min(want_u, lu - su - ru) end
if lt >= 0 then gt = math.min(want_t, lt - st - rt) end
if gu >= min_u and gt >= min_t then
  redis.call('HINCRBY', KEYS[1], 'ru', gu)
  redis.call('HINCRBY', KEYS[1], 'rt', gt)
  redis.call('HSET', KEYS[2], ARGV[2], string.format('%d:%d', gu, gt))
"""
    + _EXPIRE
    + """
  return {1, gu, gt}
end
local fits_alone = (lu < 0 or su + min_u <= lu) and (lt < 0 or st + min_t <= lt)
if fits_alone and (ru > 0 or rt > 0) then return {2, 0, 0} end
return {0, 0, 0}
"""
)

# Drops a pending reservation; returns 1 if there was one.
_DROP_RESERVATION = """
local function drop(rid)
  local r = redis.call('HGET', KEYS[2], rid)
  if not r then return 0 end
  local u, t = string.match(r, '^(%d+):(%d+)$')
  redis.call('HINCRBY', KEYS[1], 'ru', 0 - tonumber(u))
  redis.call('HINCRBY', KEYS[1], 'rt', 0 - tonumber(t))
  redis.call('HDEL', KEYS[2], rid)
  return 1
end
"""

# ARGV: id, rid, usd, tokens, output tokens (-1 = not known), ttl. Returns -1 uninitialized,
# 0 already settled, 1 counted.
SETTLE = (
    _OWNED
    + _DROP_RESERVATION
    + """
if not owned() then return -1 end
if redis.call('SADD', KEYS[3], ARGV[2]) == 0 then return 0 end
drop(ARGV[2])
redis.call('HINCRBY', KEYS[1], 'su', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'st', ARGV[4])
if tonumber(ARGV[5]) >= 0 then
  redis.call('HINCRBY', KEYS[1], 'nc', 1)
  redis.call('HINCRBY', KEYS[1], 'so', ARGV[5])
end
"""
    + _EXPIRE
    + "return 1\n"
)

# ARGV: id, rid. A foreign state is left alone.
RELEASE = _OWNED + _DROP_RESERVATION + "if not owned() then return 0 end\nreturn drop(ARGV[2])\n"
