-- through — write-through cache set, after PostgreSQL committed version V
-- (V from version.lua).
-- KEYS[1] cache key, KEYS[2] dirty index.
-- ARGV[1] value, ARGV[2] V, ARGV[3] TTL ms (<= 0: no TTL), ARGV[4] "1" for
--   a delete, ARGV[5] entity name ("" = none), stored in `e`.
-- Returns 1 applied, 0 skipped.
-- If the cache holds a newer version (a put after the reservation) nothing
-- changes -> 0: that put's event will supersede V in PostgreSQL too.
-- Otherwise the entry becomes V, CLEAN, with the TTL, even if it was dirty
-- with an older version: PostgreSQL already holds V and will refuse the
-- older event, so keeping the older dirty value (as fill.lua would) would
-- leave cache and database apart once it got cleaned. It is unindexed, and
-- `rv` is dropped if V covers it -> 1.

if redis.replicate_commands then redis.replicate_commands() end
local V = tonumber(ARGV[2])
if not V then return redis.error_reply('ERR wb through: version is not a number') end
local ttl = tonumber(ARGV[3]) or 0
local h = redis.call('HMGET', KEYS[1], 'ver', 'd', 'rv')
local cur = tonumber(h[1])
if cur and cur > V then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local del, v = '0', ARGV[1]
if ARGV[4] == '1' then del, v = '1', '' end
redis.call('HSET', KEYS[1], 'v', v, 'ver', string.format('%d', V), 'd', '0',
           'wt', string.format('%d', now), 'del', del, 'e', ARGV[5] or '')
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
if h[2] == '1' then redis.call('ZREM', KEYS[2], KEYS[1]) end
local r = tonumber(h[3])
if r and r <= V then redis.call('HDEL', KEYS[1], 'rv') end
return 1
