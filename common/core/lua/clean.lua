-- clean — the flusher has committed version V (invariant 2).
-- KEYS[1] cache key, KEYS[2] dirty index.
-- ARGV[1] V, ARGV[2] TTL ms (<= 0: no TTL), ARGV[3] "1" for a settle: V is
--   what PostgreSQL holds after refusing an OLDER event, not that event's
--   version. An entry dirty at exactly V is then left alone (0): it is a
--   write-through's, whose own event may not be in the log yet, and it
--   stays pinned until that event cleans it (invariant 11).
-- Returns a wb_entry_clean_t code:
--   1 cleaned: ver is still V and dirty: d=0, PEXPIRE TTL, ZREM.
--   0 newer: left alone; stays indexed if dirty (its own event will clean
--     it), unindexed if clean (the index lists only dirty entries).
--   2 already: same version already clean (duplicate delivery, replay).
--   3 gone: no `v` (evicted, deleted by hand, data lost): ZREM, and V is
--     left as version memory: `ver` = V in a value-less hash (a miss).
--   4 stale: the entry is OLDER than V (Redis came back from an old
--     snapshot, a replay after a restore, or the flusher cleaning with the
--     version PostgreSQL holds after refusing an older event): it holds a
--     value PostgreSQL has superseded, so its value fields are dropped and
--     `ver` becomes V (`rv` kept); the next read misses and reloads.
--     Dropping it is safe for invariant 2: its newest write is older than a
--     durable one.
-- The memory is what keeps a lagging read-through fill (a row read before V
-- committed) from caching an older row over V's: fill.lua refuses a version
-- below a remembered `ver`, and fills V itself. It lives for the TTL (no
-- TTL: 60 s, longer than a fill can lag by a default statement timeout); an
-- existing `ver` >= V is left alone. A cleaned tombstone stays as a clean
-- tombstone with the TTL: a read answers not-found without asking
-- PostgreSQL, and its version keeps a lagging fill from resurrecting the key.

local V = tonumber(ARGV[1])
if not V then return redis.error_reply('ERR wb clean: version is not a number') end
local ttl = tonumber(ARGV[2]) or 0
local mem = ttl
if mem <= 0 then mem = 60000 end
local h = redis.call('HMGET', KEYS[1], 'v', 'ver', 'd')
local cur = tonumber(h[2])
if not h[1] then
  redis.call('ZREM', KEYS[2], KEYS[1])
  if not cur or cur < V then
    redis.call('HSET', KEYS[1], 'ver', string.format('%d', V))
    if redis.call('PTTL', KEYS[1]) < mem then redis.call('PEXPIRE', KEYS[1], mem) end
  end
  return 3
end
cur = cur or 0
if cur == V and ARGV[3] == '1' and h[3] == '1' then return 0 end
if cur == V then
  redis.call('ZREM', KEYS[2], KEYS[1])
  if h[3] ~= '1' then return 2 end
  redis.call('HSET', KEYS[1], 'd', '0')
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
  return 1
end
if cur > V then
  if h[3] ~= '1' then redis.call('ZREM', KEYS[2], KEYS[1]) end
  return 0
end
redis.call('ZREM', KEYS[2], KEYS[1])
redis.call('HDEL', KEYS[1], 'v', 'd', 'wt', 'del')
redis.call('HSET', KEYS[1], 'ver', string.format('%d', V))
redis.call('PEXPIRE', KEYS[1], mem)
return 4
