-- get — the library's whole read path in one round trip.
-- KEYS[1] cache key, KEYS[2] refresh marker "wb:rr:{key}", KEYS[3]
--   stampede lock "wb:lock:{key}".
-- ARGV[1] refresh_ahead factor, ARGV[2] entity TTL ms, ARGV[3] dedupe
--   window ms (<= 0: none), ARGV[4] lock token ("" = do not lock),
--   ARGV[5] lock TTL ms.
-- Returns, on a hit (field v exists): {1, v, ver, d, del, pttl, rr}.
--   rr = 1 tells THIS caller to publish a refresh request: the entry is
--   clean and live, its remaining TTL is below (1 - ra) * ttl, and the
--   marker could be created (SET NX PX window) — so among all processes
--   sharing the Redis only one reader per window publishes. Dirty entries
--   have no TTL and are never refreshed (the flusher owns them);
--   tombstones neither (a negative entry just expires).
-- On a miss: {0, locked}. The lock is tried in the same script, so the
--   first reader of an absent key learns "miss, and you load it" in one
--   trip, and a waiting reader's poll is one trip that either hits the
--   winner's fill or takes a lock that was released (winner failed) or
--   expired (winner died).

local h = redis.call('HMGET', KEYS[1], 'v', 'ver', 'd', 'del')
if not h[1] then
  if ARGV[4] ~= '' and redis.call('SET', KEYS[3], ARGV[4], 'NX', 'PX', ARGV[5]) then
    return {0, 1}
  end
  return {0, 0}
end
local pttl = redis.call('PTTL', KEYS[1])
local rr = 0
local ra = tonumber(ARGV[1]) or 0
if ra > 0 and h[3] ~= '1' and h[4] ~= '1' and pttl >= 0 and
   pttl < (1 - ra) * (tonumber(ARGV[2]) or 0) then
  local win = tonumber(ARGV[3]) or 0
  if win <= 0 or redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then rr = 1 end
end
return {1, h[1], h[2] or '0', h[3] or '0', h[4] or '0', pttl, rr}
