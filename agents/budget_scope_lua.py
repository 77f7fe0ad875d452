"""The Lua scripts that move money inside a run's budget: reserve, settle, release, and the
allowances of its subtrees (``agents.budget``'s scopes), each one atomic step.

KEYS of reserve/settle/release: the run's state hash, its reservations hash, its settled set
(``agents.budget_lua``), then the *chain* of the calling agent: its own scope hash first, then
each ancestor scope's up to the one under the run (none for a call outside any scope).

A scope hash (an agent, or a planner group such as a folder) holds ``lu``/``lt``, its allowance
in micro-USD and tokens (-1: none, only its ancestors limit it); ``su``/``st`` spent and
``ru``/``rt`` reserved by every call in its subtree; ``ku``/``kt`` what it has *carved* for its
open children and they have not used yet (their holds); ``w`` the weight of the children still
to carve their share; ``hu``/``ht`` 1 while its parent holds its unused allowance for it (in
the parent's ``ku``/``kt``); ``c`` 1 once closed (finished: its leftover went back).

Invariant, at every level of the tree and at any concurrency: spent + reserved <= allowance.
A call is checked against its own scope's room (allowance - spent - reserved - holds: it cannot
eat what its children were promised) and against every ancestor's (allowance - spent -
reserved), and reserves at every level in the same script.
"""

from __future__ import annotations

from agents.budget_lua import _EXPIRE, _OWNED

# A scope's fields, missing ones as an unlimited, unspent scope; ``room`` is what a level can
# still grant (nil: no limit), ``own`` also keeps back its children's holds.
_SCOPE = """
local F = {'lu', 'lt', 'su', 'st', 'ru', 'rt', 'ku', 'kt', 'hu', 'ht'}
local function get(k)
  local v = redis.call('HMGET', k, unpack(F))
  local s = {missing = redis.call('EXISTS', k) == 0}
  for i, f in ipairs(F) do
    local d = 0
    if i <= 2 then d = -1 end
    s[f] = tonumber(v[i] or d)
  end
  return s
end
local function room(s, dim, own)
  local l = s['l' .. dim]
  if l < 0 then return nil end
  local r = l - s['s' .. dim] - s['r' .. dim]
  if own then r = r - s['k' .. dim] end
  return r
end
local function incr(k, f, n)
  if n ~= 0 then redis.call('HINCRBY', k, f, string.format('%d', n)) end
end
-- Give ``child`` its allowance out of ``parent``'s room. mode 0: none (only its ancestors
-- limit it); 1: the share ``w`` of the parent's pool of weights still to carve (the last child
-- of a pool gets all that is left); 2: the fixed ``cu``/``ct`` (-1: none), at most the room.
local function carve(child, parent, mode, w, cu, ct)
  local lu, lt, hu, ht = -1, -1, 0, 0
  if mode == 2 then lu, lt = cu, ct end
  if mode > 0 and redis.call('EXISTS', parent) == 1 then
    local p = get(parent)
    local au, at = room(p, 'u', true), room(p, 't', true)
    if au and au < 0 then au = 0 end
    if at and at < 0 then at = 0 end
    if mode == 1 then
      local pool = tonumber(redis.call('HGET', parent, 'w') or '0')
      if pool < w then pool = w end
      if au then lu = math.min(au, math.floor(au * w / pool)) end
      if at then lt = math.min(at, math.floor(at * w / pool)) end
      redis.call('HSET', parent, 'w', string.format('%d', pool - w))
    else
      if au then
        if lu < 0 then lu = au else lu = math.min(lu, au) end
      end
      if at then
        if lt < 0 then lt = at else lt = math.min(lt, at) end
      end
    end
    if au and lu >= 0 then hu = 1; incr(parent, 'ku', lu) end
    if at and lt >= 0 then ht = 1; incr(parent, 'kt', lt) end
  end
  redis.call('HSET', child, 'lu', string.format('%d', lu), 'lt', string.format('%d', lt),
    'su', 0, 'st', 0, 'ru', 0, 'rt', 0, 'ku', 0, 'kt', 0, 'w', 0, 'hu', hu, 'ht', ht, 'c', 0)
  return lu, lt
end
-- The parent of chain level i (the run's state above the top scope).
local function parent_of(i)
  return KEYS[i + 1] or KEYS[1]
end
-- Move ``du``/``dt`` of use (reserved or spent) into every scope of the chain, and out of the
-- holds their parents keep for them (a child's use is no longer its parent's to promise).
-- ``present`` (optional) says which levels a reservation was made at ('1' per KEYS index from
-- 4): a scope carved after it never saw it, and must not give back what it never took.
local function use(ru_or_su, rt_or_st, du, dt, present)
  for i = 4, #KEYS do
    local s = get(KEYS[i])
    local was = present == nil or string.sub(present, i - 3, i - 3) == '1'
    if not s.missing and was then
      incr(KEYS[i], ru_or_su, du)
      incr(KEYS[i], rt_or_st, dt)
      if s.hu == 1 then incr(parent_of(i), 'ku', -du) end
      if s.ht == 1 then incr(parent_of(i), 'kt', -dt) end
    end
  end
end
-- Which levels of the chain exist now, as ``use`` reads them back.
local function presence()
  local bits = ''
  for i = 4, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 1 then bits = bits .. '1' else bits = bits .. '0' end
  end
  return bits
end
"""

# Reserve for one call: as much as its upper bound (ARGV usd, tokens) if that fits every level,
# else what is left at the tightest level as long as that still covers the call's likely size
# (ARGV min_usd, min_tokens): the caller caps the call's output to what was granted, so the
# call costs no more than its reservation. An agent's own scope missing is carved first (ARGV
# mode, w, cu, ct: see ``carve``), so its allowance is fixed once, by its first call: a re-sent
# agent finds it and is never given a second one.
# ARGV: id, rid, usd, tokens, min_usd, min_tokens, mode, w, cu, ct, ttl.
# Returns {code, granted usd, granted tokens, level, carved}. Code 1: reserved (or already
# was). 2: refused, but it fits once the calls in flight at the refusing level settle. 0:
# refused for good. -1: uninitialized. ``level`` is the KEYS index that refused (1: the run).
RESERVE_CALL = (
    _OWNED
    + _SCOPE
    + """
if not owned() then return {-1, 0, 0, 0, 0} end
local held = redis.call('HGET', KEYS[2], ARGV[2])
if held then
  local u, t = string.match(held, '^(%d+):(%d+)')
  return {1, tonumber(u), tonumber(t), 0, 0}
end
local want_u, want_t = tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 1 then return {1, want_u, want_t, 0, 0} end
if tonumber(redis.call('HGET', KEYS[1], 'ex') or '0') == 1 then return {0, 0, 0, 1, 0} end
local carved = 0
if #KEYS >= 4 and redis.call('EXISTS', KEYS[4]) == 0 then
  carve(KEYS[4], parent_of(4), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]),
    tonumber(ARGV[10]))
  carved = 1
end
local min_u, min_t = tonumber(ARGV[5]), tonumber(ARGV[6])
local levels = {}
for i = 4, #KEYS do levels[#levels + 1] = i end
levels[#levels + 1] = 1
local gu, gt, fail, failed = want_u, want_t, 0, nil
for _, i in ipairs(levels) do
  local s = get(KEYS[i])
  local own = i == 4
  local r = room(s, 'u', own)
  if r then gu = math.min(gu, r) end
  r = room(s, 't', own)
  if r then gt = math.min(gt, r) end
  if fail == 0 and (gu < min_u or gt < min_t) then fail, failed = i, s end
end
if fail == 0 then
  incr(KEYS[1], 'ru', gu)
  incr(KEYS[1], 'rt', gt)
  use('ru', 'rt', gu, gt)
  redis.call('HSET', KEYS[2], ARGV[2], string.format('%d:%d:', gu, gt) .. presence())
"""
    + _EXPIRE
    + """
  return {1, gu, gt, 0, carved}
end
if #KEYS >= 4 then
  for i = 4, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[#ARGV]) end
end
local s = failed
local k_u, k_t = 0, 0
if fail == 4 then k_u, k_t = s.ku, s.kt end
local fits_alone = (s.lu < 0 or s.su + k_u + min_u <= s.lu) and
  (s.lt < 0 or s.st + k_t + min_t <= s.lt)
if fits_alone and (s.ru > 0 or s.rt > 0) then return {2, 0, 0, fail, carved} end
return {0, 0, 0, fail, carved}
"""
)

# Takes the pending reservation of ARGV[2] off the run's state; returns whether there was one,
# its usd, tokens and the levels of the chain it was made at ("usd:tokens:levels"; a
# reservation without levels was made before scopes existed: the run's state alone).
_TAKE = """
local function take(rid)
  local r = redis.call('HGET', KEYS[2], rid)
  if not r then return nil, 0, 0, nil end
  local u, t, bits = string.match(r, '^(%d+):(%d+):?([01]*)$')
  u, t = tonumber(u), tonumber(t)
  incr(KEYS[1], 'ru', -u)
  incr(KEYS[1], 'rt', -t)
  redis.call('HDEL', KEYS[2], rid)
  return 1, u, t, bits
end
"""

# ARGV: id, rid, usd, tokens, output tokens (-1 = not known), ttl. Returns -1 uninitialized,
# 0 already settled, 1 counted. Every level of the chain trades its reservation for the usage.
SETTLE = (
    _OWNED
    + _SCOPE
    + _TAKE
    + """
if not owned() then return -1 end
if redis.call('SADD', KEYS[3], ARGV[2]) == 0 then return 0 end
local found, hu, ht, bits = take(ARGV[2])
local usd, tokens = tonumber(ARGV[3]), tonumber(ARGV[4])
incr(KEYS[1], 'su', usd)
incr(KEYS[1], 'st', tokens)
if found then use('ru', 'rt', -hu, -ht, bits) end
use('su', 'st', usd, tokens)
if tonumber(ARGV[5]) >= 0 then
  redis.call('HINCRBY', KEYS[1], 'nc', 1)
  redis.call('HINCRBY', KEYS[1], 'so', ARGV[5])
end
"""
    + _EXPIRE
    + "return 1\n"
)

# ARGV: id, rid. Drops a pending reservation at every level; a foreign state is left alone.
RELEASE = (
    _OWNED
    + _SCOPE
    + _TAKE
    + """
if not owned() then return 0 end
local found, hu, ht, bits = take(ARGV[2])
if not found then return 0 end
use('ru', 'rt', -hu, -ht, bits)
return 1
"""
)

# Carve a scope outside a call (a planner group out of the run): KEYS child, parent. ARGV:
# mode, w, cu, ct, the child's own pool of weights, ttl. Idempotent: an existing scope keeps its
# allowance. Returns {allowance usd, allowance tokens, 1 if carved now}.
CARVE = (
    _SCOPE
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then
  local s = get(KEYS[1])
  return {s.lu, s.lt, 0}
end
local lu, lt = carve(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]),
  tonumber(ARGV[3]), tonumber(ARGV[4]))
redis.call('HSET', KEYS[1], 'w', ARGV[5])
"""
    + _EXPIRE
    + """
return {lu, lt, 1}
"""
)

# Add ARGV[1] to the pool of weights of KEYS[1] (a spawner's children to carve); ARGV[2] ttl.
POOL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'w', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

# A finished subtree gives its parent back what it did not use. KEYS scope, parent. ARGV ttl.
# Returns {usd, tokens} given back ({0, 0} if it was closed already or held nothing).
CLOSE = (
    _SCOPE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HGET', KEYS[1], 'c') == '1' then
  return {0, 0}
end
local s = get(KEYS[1])
local back_u, back_t = 0, 0
if s.hu == 1 then back_u = math.max(0, room(s, 'u', true)); incr(KEYS[2], 'ku', -back_u) end
if s.ht == 1 then back_t = math.max(0, room(s, 't', true)); incr(KEYS[2], 'kt', -back_t) end
redis.call('HSET', KEYS[1], 'c', 1, 'hu', 0, 'ht', 0)
"""
    + _EXPIRE
    + """
return {back_u, back_t}
"""
)
