-- Set one field of a job hash, but only while the hash exists: a plain HSET
-- on an expired job would recreate it as a hash without a TTL (a leak).
-- KEYS[1] job hash; ARGV[1] field, ARGV[2] value. Returns 1 when written.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
