-- through — write-through cache set, after PostgreSQL committed version V
-- (V from version.lua); its change event goes to Kafka after this script.
-- KEYS[1] cache key, KEYS[2] dirty index.
-- ARGV[1] value, ARGV[2] V, ARGV[3] "1" for a delete, ARGV[4] entity name
--   ("" = none), stored in `e`.
-- Returns 1 applied, 0 skipped.
-- If the cache holds a newer version (a put after the reservation) nothing
-- changes -> 0: that newer write is pinned until its own event is in the
-- log, and it supersedes V in PostgreSQL too.
-- Otherwise the entry becomes V, DIRTY, without TTL and in the dirty index
-- (score: when it first became dirty), exactly as `put` leaves a write-behind write
-- (invariants 2 and 11): pinned until the flusher has consumed V's event
-- (PostgreSQL already holds V; `clean` at V then gives it its TTL), and
-- re-published by the sweeper if that event never reached Kafka. An older
-- dirty value is replaced: V is newer, and PostgreSQL will refuse the older
-- event. `rv` is dropped if V covers it -> 1.

if redis.replicate_commands then redis.replicate_commands() end
local ty = redis.call('TYPE', KEYS[2]).ok
if ty ~= 'zset' and ty ~= 'none' then
  return redis.error_reply('WRONGTYPE wb through: dirty index is not a sorted set')
end
local V = tonumber(ARGV[2])
if not V then return redis.error_reply('ERR wb through: version is not a number') end
local h = redis.call('HMGET', KEYS[1], 'ver', 'rv')
local cur = tonumber(h[1])
if cur and cur > V then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local del, v = '0', ARGV[1]
if ARGV[3] == '1' then del, v = '1', '' end
local snow = string.format('%d', now)
redis.call('HSET', KEYS[1], 'v', v, 'ver', string.format('%d', V), 'd', '1',
           'wt', snow, 'del', del, 'e', ARGV[4] or '')
redis.call('PERSIST', KEYS[1])
-- NX: an older dirty write it replaces keeps its first-dirty score, so the
-- sweeper's age is the age of the oldest write not yet in PostgreSQL's log.
redis.call('ZADD', KEYS[2], 'NX', snow, KEYS[1])
local r = tonumber(h[2])
if r and r <= V then redis.call('HDEL', KEYS[1], 'rv') end
return 1
