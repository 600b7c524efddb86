-- Cancel a job that has not started. Another owner's job reads as not found.
-- The job stays in its owner's backlog until a worker takes its entry and
-- settles it (start.lua), as the entry stays in the stream until then.
-- KEYS[1] job hash, KEYS[2] outbox
-- ARGV[1] owner, ARGV[2] now ms, ARGV[3] done channel, ARGV[4] job id
-- Returns {'ok', the job hash as it is now (flat field/value list)} | {'not_found'}
-- | {'not_cancelable', the status that prevents canceling}
local h = redis.call('HMGET', KEYS[1], 'status', 'owner')
if not h[1] or h[2] ~= ARGV[1] then
  return {'not_found'}
end
if h[1] ~= 'queued' then
  return {'not_cancelable', h[1]}
end
redis.call('HSET', KEYS[1], 'status', 'canceled', 'finished_at', ARGV[2])
if redis.call('HGET', KEYS[1], 'callback') == '1' then
  redis.call('HSET', KEYS[1], 'wh_status', 'pending', 'wh_attempts', 0)
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return {'ok', redis.call('HGETALL', KEYS[1])}
