-- clean — the flusher has committed version V (invariant 2).
-- KEYS[1] cache key, KEYS[2] dirty index.
-- ARGV[1] V, ARGV[2] TTL ms (<= 0: no TTL), ARGV[3] E: the version of the
--   event PostgreSQL refused because it holds V > E ("0" or absent: the
--   event itself committed, V is its version). With E > 0 (a settle), an
--   entry dirty at exactly V is left alone (0): it is a write-through's,
--   whose own event may not be in the log yet, and it stays pinned until
--   that event cleans it (invariant 11).
-- Returns a wb_entry_clean_t code (an integer), or for code 5 the array
--   {5, v, del, e, wt} of the write that was lost:
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
--   5 refused: like 4, but the entry was still DIRTY at exactly E, and no
--     reservation (`rv` >= V, a write-through that superseded E) explains
--     V: the newest write of the key was refused by PostgreSQL (a version
--     PostgreSQL holds that this Redis never handed out: the row was
--     written outside the log, or Redis lost its data, floor included, and
--     its clock is behind). The entry is dropped as in 4 and its value is
--     returned, so the flusher dead-letters it (ERROR, counter, wb.dlq with
--     the reason): never a silent loss.
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
local E = tonumber(ARGV[3]) or 0
local h = redis.call('HMGET', KEYS[1], 'v', 'ver', 'd', 'rv', 'del', 'e', 'wt')
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
if cur == V and E > 0 and h[3] == '1' then return 0 end
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
redis.call('HDEL', KEYS[1], 'v', 'd', 'wt', 'del', 'e')
redis.call('HSET', KEYS[1], 'ver', string.format('%d', V))
redis.call('PEXPIRE', KEYS[1], mem)
if E > 0 and cur == E and h[3] == '1' and (tonumber(h[4]) or 0) < V then
  return {5, h[1], h[5] or '0', h[6] or '', h[7] or '0'}
end
return 4
