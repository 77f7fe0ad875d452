"""The Lua scripts of ``agents.budget``: every check-and-update of a run's budget is one script,
so it is atomic across threads, processes and machines.

KEYS (every script): the state hash, the reservations hash (reservation id -> "usd:tokens"),
the set of settled reservation ids. State fields: ``id`` (the budget's id: a hash carrying
another is not ours), ``lu``/``lt`` limits in micro-USD and tokens (-1 = unlimited), ``su``/``st``
spent, ``ru``/``rt`` reserved, ``ex`` the exhausted flag, ``nc``/``so`` how many settled calls
reported their output tokens and how many output tokens those were (the running average a
call's likely size is estimated from, ``agents.budget_calls``).

The scripts that reserve, settle and release (and the allowances of subtrees they check) are in
``agents.budget_scope_lua``.
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
