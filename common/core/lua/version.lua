-- version — the version of a write-through, reserved without touching the
-- value (invariant 1).
-- KEYS[1] cache key "{N}...", KEYS[2] the version floor of its shard
--   "<index>:{N}:floor" (see put.lua).
-- ARGV[1] reservation TTL ms (<= 0: 1000), for a hash without value.
-- Returns V, the reserved version: max(max(ver, rv) + 1, TIME, floor + 1).
-- Write-through commits PostgreSQL with version V first and only then sets
-- the cache (through.lua), so V must be (a) above every version the key had
-- so far, and (b) below every version handed out later — also to a
-- write-behind put that runs while the PostgreSQL transaction is open. If V
-- were only computed (max(prev+1, now)) and not stored, a put in the same
-- microsecond, or one after a burst that ran `ver` ahead of the clock, could
-- get the same V for a different value; PostgreSQL's strict `version <`
-- guard would then keep whichever arrived first while the cache keeps the
-- other — a permanent divergence. Writing V into `ver` is wrong too: the
-- cache would label the OLD value with V, and if the write-through then
-- failed, the flusher and sweeper would publish that old value as V. So V
-- goes into the separate field `rv` (reserved version), which put and
-- version include in their max. If the key has no value, the hash created
-- here holds only `rv` — a reservation that reads as a miss (an entry
-- exists only if `v` exists) — and gets a short TTL so a failed
-- write-through leaves nothing behind; once it expired the clock is past V,
-- so the time floor keeps later versions above V.

if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local h = redis.call('HMGET', KEYS[1], 'ver', 'rv', 'v')
local prev = tonumber(h[1]) or 0
local r = tonumber(h[2]) or 0
if r > prev then prev = r end
local floor = tonumber(redis.call('GET', KEYS[2])) or 0
if floor > prev then prev = floor end
local ver = now
if prev + 1 > ver then ver = prev + 1 end
redis.call('HSET', KEYS[1], 'rv', string.format('%d', ver))
if not h[3] then
  local ttl = tonumber(ARGV[1]) or 0
  if ttl < 1 then ttl = 1000 end
  if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
end
return ver
