-- floor — raise the version floor after the flusher committed (invariant 1).
-- KEYS[1] version floor ("<dirty index>:floor").
-- ARGV[1] V, the highest version of a committed batch (or the newer one
--   PostgreSQL holds and refused an event for).
-- Returns the floor after the call.
-- Never lowers it. `put` and `version` hand out versions above it, so a
-- Redis whose clock stepped back (failover to a replica behind, NTP step)
-- and lost the entry still gives versions PostgreSQL accepts. It is a plain
-- string key without TTL beside the dirty index: one key per dirty index,
-- so a sharded deployment (one index per hash slot tag) gets one floor per
-- shard.

local V = tonumber(ARGV[1])
if not V then return redis.error_reply('ERR wb floor: version is not a number') end
local cur = tonumber(redis.call('GET', KEYS[1])) or 0
if V > cur then
  redis.call('SET', KEYS[1], string.format('%d', V))
  return V
end
return cur
