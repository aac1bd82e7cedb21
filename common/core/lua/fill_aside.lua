-- fill_aside — cache-aside fill from the caller's loader, which has no
-- version (invariant 8, last sentence).
-- KEYS[1] cache key.
-- ARGV[1] value, ARGV[2] TTL ms (<= 0: no TTL), ARGV[3] "1" for a negative
--   entry (the loader found nothing: stored as a tombstone).
-- Returns 1 created, 0 not (an entry exists).
-- Creates the entry only if there is none (no `v`), clean, with ver 0
-- unless the hash remembers a version (kept: it still floors the next put).

if redis.replicate_commands then redis.replicate_commands() end
if redis.call('HEXISTS', KEYS[1], 'v') == 1 then return 0 end
local ttl = tonumber(ARGV[2]) or 0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local del, v = '0', ARGV[1]
if ARGV[3] == '1' then del, v = '1', '' end
redis.call('HSET', KEYS[1], 'v', v, 'd', '0', 'wt', string.format('%d', now), 'del', del)
redis.call('HSETNX', KEYS[1], 'ver', '0')
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
return 1
