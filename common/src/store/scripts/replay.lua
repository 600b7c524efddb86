-- Replay one dead-lettered job (`couplet-api dlq replay`): re-enqueue it as a
-- new run of the same job id and remove its dead-letter entry, all at once, so
-- a second replay of the same entry finds nothing ('not_found') and can never
-- queue the job twice. Only a job still 'failed' is replayed; one that expired,
-- was replayed another way or changed owner is left alone.
-- The stream entry has the fields submit.lua writes (job, req, t, o, b); `req`
-- is rebuilt and validated by the caller from the job's stored request.
-- The job restarts at attempts 0 with its error and webhook state cleared and
-- leaves the outbox (a failure webhook not yet sent must not follow the
-- requeue); complete.lua queues a fresh webhook when it settles again.
-- Admission (MAX_BACKLOG, quotas) is deliberately not applied: an operator's
-- replay is not a tenant's submission.
-- KEYS[1] dead-letter stream, KEYS[2] job hash, KEYS[3] job stream, KEYS[4] entry index,
-- KEYS[5] owner's backlog (named by the job's backlog subject), KEYS[6] outbox
-- ARGV[1] dead-letter entry id, ARGV[2] job id, ARGV[3] owner (as the caller read it),
-- ARGV[4] validated request for the worker, ARGV[5] now ms, ARGV[6] ttl s,
-- ARGV[7] "1" to keep the callback, "0" to drop it, ARGV[8] backlog subject (the job's, as the caller read it)
-- Returns {'queued', new entry id} | {'not_found', ''} | {'gone', ''} | {'not_failed', status} | {'stale', ''}
local dead = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1], 'COUNT', 1)
if #dead == 0 then
  return {'not_found', ''}
end
local fields = dead[1][2]
local job
for i = 1, #fields, 2 do
  if fields[i] == 'job' then job = fields[i + 1] end
end
if job ~= ARGV[2] then
  return {'stale', ''}
end
local st = redis.call('HMGET', KEYS[2], 'status', 'owner')
if not st[1] then
  return {'gone', ''}
end
if st[1] ~= 'failed' then
  return {'not_failed', st[1]}
end
if st[2] ~= ARGV[3] then
  return {'stale', ''}
end
redis.call('HDEL', KEYS[2], 'error', 'finished_at', 'started_at', 'last_error',
  'wh_status', 'wh_attempts', 'wh_last_error', 'wh_delivered_at')
redis.call('HSET', KEYS[2], 'status', 'queued', 'attempts', 0, 'replayed_at', ARGV[5])
redis.call('HINCRBY', KEYS[2], 'replays', 1)
if ARGV[7] ~= '1' then
  redis.call('HSET', KEYS[2], 'callback', '0')
end
redis.call('ZREM', KEYS[6], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[6])
local entry = redis.call('XADD', KEYS[3], '*', 'job', ARGV[2], 'req', ARGV[4], 't', ARGV[5], 'o', ARGV[3], 'b', ARGV[8])
redis.call('HSET', KEYS[4], entry, ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[2])
redis.call('EXPIRE', KEYS[5], ARGV[6])
redis.call('XDEL', KEYS[1], ARGV[1])
return {'queued', entry}
