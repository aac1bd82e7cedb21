-- put — write-behind put or delete (invariants 1, 2 and 12).
-- KEYS[1] cache key "{N}...", KEYS[2] its dirty-index shard "<index>:{N}",
--   KEYS[3] that shard's version floor "<index>:{N}:floor" (one hash slot,
--   see wb_entry.h).
-- ARGV[1] value, ARGV[2] "1" for a delete (the value is then stored as ""
--   with del=1: a tombstone must stay in the cache, dirty, until
--   PostgreSQL holds the soft delete), ARGV[3] entity name ("" = none).
-- Returns {ver, now}: the version and the write time (Redis TIME, µs), as
--   integers (exact: see wb_entry.h).
-- Atomically: now = TIME in µs; ver = max(max(ver, rv) + 1, now, floor +
-- 1); HSET v/ver/d=1/wt=now/del/e; drop rv (ver is above it now); PERSIST,
-- because a dirty entry must not expire or be picked by volatile-*
-- eviction; ZADD NX the index with score now: an entry already dirty keeps
-- the time it FIRST became dirty, so a key rewritten faster than
-- sweep_after_ms whose events keep failing is still swept. The floor is
-- the highest version the flusher committed (raised by `floor`): with the
-- entry gone and Redis TIME stepped back, versions still land above what
-- PostgreSQL holds. The index type is checked first so that a failure
-- cannot leave a dirty entry outside the index (a script error does not
-- roll back earlier writes).

-- Redis < 5 refuses writes after TIME unless effects replication is on;
-- Redis >= 5 does it by default and 7.x keeps the call as a no-op.
if redis.replicate_commands then redis.replicate_commands() end
local ty = redis.call('TYPE', KEYS[2]).ok
if ty ~= 'zset' and ty ~= 'none' then
  return redis.error_reply('WRONGTYPE wb put: dirty index is not a sorted set')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local h = redis.call('HMGET', KEYS[1], 'ver', 'rv')
local prev = tonumber(h[1]) or 0
local r = tonumber(h[2]) or 0
if r > prev then prev = r end
local floor = tonumber(redis.call('GET', KEYS[3])) or 0
if floor > prev then prev = floor end
local ver = now
if prev + 1 > ver then ver = prev + 1 end
local del, v = '0', ARGV[1]
if ARGV[2] == '1' then del, v = '1', '' end
local snow = string.format('%d', now)
redis.call('HSET', KEYS[1], 'v', v, 'ver', string.format('%d', ver), 'd', '1',
           'wt', snow, 'del', del, 'e', ARGV[3] or '')
if h[2] then redis.call('HDEL', KEYS[1], 'rv') end
redis.call('PERSIST', KEYS[1])
redis.call('ZADD', KEYS[2], 'NX', snow, KEYS[1])
return {ver, now}
