-- sweep_check — one dirty-index member, read atomically with the decision
-- (invariant 9).
-- KEYS[1] cache key, KEYS[2] dirty index.
-- Returns {0} when the entry is gone (no `v`) or clean: the member is
--   removed from the index; {1, v, ver, wt, del, e} when it is dirty, for
--   the sweeper to re-publish under the entity the put stored (`e`; "" for
--   an entry written before the field existed: the sweeper then goes by
--   the key's prefix).
-- Done in one script because a put between a separate read and ZREM would
-- make the entry dirty again and the ZREM would then unindex a write that
-- is not durable.

local h = redis.call('HMGET', KEYS[1], 'v', 'ver', 'd', 'wt', 'del', 'e')
if not h[1] or h[3] ~= '1' then
  redis.call('ZREM', KEYS[2], KEYS[1])
  return {0}
end
return {1, h[1], h[2] or '0', h[4] or '0', h[5] or '0', h[6] or ''}
