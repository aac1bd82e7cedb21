-- forget — version V of the key is poison: the flusher could not apply it
-- and the dead-letter topic has acknowledged it (invariant 7).
-- KEYS[1] cache key, KEYS[2] dirty index.
-- ARGV[1] V, ARGV[2] TTL ms of the version memory (<= 0: only the floor
--   below).
-- Returns 1 forgotten, 0 untouched (absent, older, newer or clean).
-- Without this the entry would stay dirty forever and the sweeper
-- (invariant 9) would re-publish it on every pass, filling the dead-letter
-- topic. Only an entry that still holds exactly V and is dirty is touched:
-- a newer write has its own event, and V clean means PostgreSQL holds it
-- after all. It is unindexed and its value fields dropped, so a read misses
-- and fills from what PostgreSQL holds — the cache falls back to the
-- database. V is kept as version memory in `rv`, not `ver`: put and version
-- take max(ver, rv), so later writes stay above V, while fill ignores `rv`
-- and may fill the older row PostgreSQL holds (a `ver` of V would make
-- every fill a "newer entry" skip until the memory expired). The memory
-- lives for ARGV[2] ms, but at least a second and until a second after
-- Redis TIME passes V (from then on the time floor alone keeps versions
-- above V; a version is ahead of the clock only after a burst). ZREM comes
-- first: if the index has the wrong type the script fails before writing
-- anything.

if redis.replicate_commands then redis.replicate_commands() end
local V = tonumber(ARGV[1])
if not V then return redis.error_reply('ERR wb forget: version is not a number') end
local ttl = tonumber(ARGV[2]) or 0
local h = redis.call('HMGET', KEYS[1], 'v', 'ver', 'd', 'rv')
if not h[1] or h[3] ~= '1' or tonumber(h[2]) ~= V then return 0 end
redis.call('ZREM', KEYS[2], KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local keep = 1000
if V > now then keep = keep + math.ceil((V - now) / 1000) end
if keep > ttl then ttl = keep end
local r = tonumber(h[4]) or 0
if r < V then r = V end
redis.call('HSET', KEYS[1], 'rv', string.format('%d', r))
redis.call('HDEL', KEYS[1], 'v', 'ver', 'd', 'wt', 'del', 'e')
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
