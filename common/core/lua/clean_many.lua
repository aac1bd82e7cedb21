-- clean_many — the flusher has committed a batch: N keys of ONE dirty-index
-- shard are clean-marked (invariant 2) and the shard's version floor is
-- raised (invariant 1), in one call (one hash slot: see wb_entry.h).
-- KEYS[1] the shard's dirty index, KEYS[2] its version floor, KEYS[3 ..]
--   the N cache keys (each key at most once).
-- ARGV[1] F, the floor candidate: the highest version the batch committed
--   in this shard ("0": leave the floor); then three per key k (ARGV[3k-1],
--   ARGV[3k], ARGV[3k+1]): V, TTL ms (<= 0: no TTL), E: the version of the
--   event PostgreSQL refused because it holds V > E ("0": the event itself
--   committed, V is its version). With E > 0 (a settle), an entry dirty at
--   exactly V is left alone (0): it is a write-through's, whose own event may
--   not be in the log yet, and it stays pinned until that event cleans it
--   (invariant 11).
-- The floor is never lowered: `put` and `version` hand out versions above
--   it, so a Redis whose clock stepped back (failover to a replica behind,
--   NTP step) and lost the entry still gives versions PostgreSQL accepts.
-- Returns an array of N results, one per key in KEYS order: a
--   wb_entry_clean_t code (an integer), or for code 5 the array
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

if redis.replicate_commands then redis.replicate_commands() end
-- The index members to remove are collected and removed with one ZREM at
-- the end (one command instead of one per key; nothing here reads the
-- index, so the outcome is the same).
local idx, out, zrem = KEYS[1], {}, {}
local F = tonumber(ARGV[1])
if not F then return redis.error_reply('ERR wb clean: floor is not a number') end

local function clean(key, V, ttl, E)
  local mem = ttl
  if mem <= 0 then mem = 60000 end
  local h = redis.call('HMGET', key, 'v', 'ver', 'd', 'rv', 'del', 'e', 'wt')
  local cur = tonumber(h[2])
  if not h[1] then
    zrem[#zrem + 1] = key
    if not cur or cur < V then
      redis.call('HSET', key, 'ver', string.format('%d', V))
      if redis.call('PTTL', key) < mem then redis.call('PEXPIRE', key, mem) end
    end
    return 3
  end
  cur = cur or 0
  if cur == V and E > 0 and h[3] == '1' then return 0 end
  if cur == V then
    zrem[#zrem + 1] = key
    if h[3] ~= '1' then return 2 end
    redis.call('HSET', key, 'd', '0')
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
    return 1
  end
  if cur > V then
    if h[3] ~= '1' then zrem[#zrem + 1] = key end
    return 0
  end
  zrem[#zrem + 1] = key
  redis.call('HDEL', key, 'v', 'd', 'wt', 'del', 'e')
  redis.call('HSET', key, 'ver', string.format('%d', V))
  redis.call('PEXPIRE', key, mem)
  if E > 0 and cur == E and h[3] == '1' and (tonumber(h[4]) or 0) < V then
    return {5, h[1], h[5] or '0', h[6] or '', h[7] or '0'}
  end
  return 4
end

for k = 3, #KEYS do
  local a = 3 * (k - 2) - 1
  local V = tonumber(ARGV[a])
  if not V then return redis.error_reply('ERR wb clean: version is not a number') end
  out[#out + 1] = clean(KEYS[k], V, tonumber(ARGV[a + 1]) or 0, tonumber(ARGV[a + 2]) or 0)
end
if #zrem > 0 then redis.call('ZREM', idx, unpack(zrem)) end
if F > 0 and F > (tonumber(redis.call('GET', KEYS[2])) or 0) then
  redis.call('SET', KEYS[2], string.format('%d', F))
end
return out
