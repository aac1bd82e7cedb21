-- fill_aside — cache-aside fill from the caller's loader, which has no
-- version (invariant 8, last sentence).
-- KEYS[1] cache key.
-- ARGV[1] value, ARGV[2] TTL ms (<= 0: no TTL), ARGV[3] "1" for a negative
--   entry (the loader found nothing: stored as a tombstone), ARGV[4]
--   entity name ("" = none), stored in `e`.
-- Returns 1 created, 0 not (an entry exists).
-- Creates the entry only if there is none (no `v`), clean, with ver 0: the
-- loader's value has no version. A version the hash remembers (`ver` left
-- by `clean` when PostgreSQL committed V while the entry was gone) is NOT
-- kept as the value's version: the loader may have read before V committed,
-- and labelling its old value V would make every later fill of V a
-- same-version "extend the TTL" that pins the old value. The memory moves
-- to `rv` instead (put and version stay above it; fill ignores it), so the
-- next versioned fill (refresh-ahead, read-through) replaces the value.

if redis.replicate_commands then redis.replicate_commands() end
local h = redis.call('HMGET', KEYS[1], 'v', 'ver', 'rv')
if h[1] then return 0 end
local ttl = tonumber(ARGV[2]) or 0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local del, v = '0', ARGV[1]
if ARGV[3] == '1' then del, v = '1', '' end
local mem = tonumber(h[2]) or 0
local r = tonumber(h[3]) or 0
if mem > r then redis.call('HSET', KEYS[1], 'rv', string.format('%d', mem)) end
redis.call('HSET', KEYS[1], 'v', v, 'ver', '0', 'd', '0', 'wt', string.format('%d', now),
           'del', del, 'e', ARGV[4] or '')
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
return 1
