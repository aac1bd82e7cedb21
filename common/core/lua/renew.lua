-- renew — compare-and-extend of the sweeper's lease "<dirty index>:sweeper".
-- KEYS[1] the lease key.
-- ARGV[1] the owner's token, ARGV[2] the lease ms.
-- Returns 1 renewed, 0 not ours.
-- Only the replica whose token is stored may extend it, so one that paused
-- longer than the lease (and lost it) cannot cut short the new holder's.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
