-- fill — versioned cache fill from PostgreSQL: read-through miss and
-- refresh-ahead (invariant 8).
-- KEYS[1] cache key.
-- ARGV[1] value, ARGV[2] version of the row, ARGV[3] TTL ms (<= 0: no
--   TTL), ARGV[4] "1" if the row is a soft-deleted tombstone, ARGV[5]
--   entity name ("" = none), stored in `e`.
-- Returns a wb_entry_fill_t code:
--   5 skipped dirty: never touched, not even its TTL (it must stay pinned).
--   4 skipped newer: the entry has a newer version; this includes a
--     value-less hash whose remembered `ver` is newer (the read raced a
--     commit).
--   3 extended: same version, clean: only the TTL is extended, never
--     shortened.
--   2 replaced: an older clean entry, including a cache-aside value
--     (ver 0: it has no version, so any committed row replaces it).
--   1 created: there was no entry.
-- The new entry is clean; wt is the fill time; a reservation `rv` is kept.

if redis.replicate_commands then redis.replicate_commands() end
local V = tonumber(ARGV[2])
if not V then return redis.error_reply('ERR wb fill: version is not a number') end
local ttl = tonumber(ARGV[3]) or 0
local h = redis.call('HMGET', KEYS[1], 'v', 'ver', 'd')
local cur = tonumber(h[2])
local code = 1
if h[1] then
  if h[3] == '1' then return 5 end
  cur = cur or 0
  if cur > V then return 4 end
  if cur == V then
    local left = redis.call('PTTL', KEYS[1])
    if ttl <= 0 then redis.call('PERSIST', KEYS[1])
    elseif left >= 0 and left < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
    return 3
  end
  code = 2
elseif cur and cur > V then
  return 4
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local del, v = '0', ARGV[1]
if ARGV[4] == '1' then del, v = '1', '' end
redis.call('HSET', KEYS[1], 'v', v, 'ver', string.format('%d', V), 'd', '0',
           'wt', string.format('%d', now), 'del', del, 'e', ARGV[5] or '')
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
return code
