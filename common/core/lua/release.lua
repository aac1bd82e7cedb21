-- release — compare-and-delete of a token key: the library's stampede lock
-- "wb:lock:{key}" and the sweeper's lease "<dirty index>:sweeper".
-- KEYS[1] the lock or lease key.
-- ARGV[1] the owner's token.
-- Returns 1 deleted, 0 not ours (another token, or expired).
-- Only the owner deletes: a holder that outlived its TTL must not release
-- the lock or lease a later owner took meanwhile.

if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
