-- Set one field of a job hash, but only while the hash exists: a plain HSET
-- on an expired job would recreate it as a hash without a TTL (a leak).
-- store::batch::note_error uses it for the transient error (last_error) of a
-- job whose entry stays pending and is retried.
-- KEYS[1] job hash; ARGV[1] field, ARGV[2] value. Returns 1 when written, else 0.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
