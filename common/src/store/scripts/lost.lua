-- Settle one unacknowledged entry whose stream data may have disappeared
-- (XTRIM/XDEL by hand, a failover that lost writes; store::lost). Everything
-- is re-checked here, atomically, so a caller's stale view can never fail a
-- live job: the index must still map the entry to this job, the entry must be
-- gone from the stream, and it must not be pending in any consumer (a worker
-- holding it already has its data and will complete it; once XAUTOCLAIM
-- reports it deleted, Redis has dropped it from the PEL and it is lost).
-- The entry leaves the index and the job its owner's backlog (lib/settle.lua);
-- a job still queued or running fails with 'lost_from_queue'.
-- KEYS[1] job hash, KEYS[2] stream, KEYS[3] entry index, KEYS[4] outbox,
-- KEYS[5] the owner's backlog (Keys::backlog of the job's backlog subject, as the caller read it)
-- ARGV[1] entry id, ARGV[2] job id, ARGV[3] group, ARGV[4] now ms, ARGV[5] done channel
-- Job hash fields read: status callback; written: status error finished_at [wh_status wh_attempts]
-- Returns 'present' | 'pending' | 'stale' (index moved on) | 'cleared' (job gone or final) | 'failed'
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then
  return 'stale'
end
if #redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1], 'COUNT', 1) > 0 then
  return 'present'
end
local ok, pel = pcall(redis.call, 'XPENDING', KEYS[2], ARGV[3], ARGV[1], ARGV[1], 1)
if ok and #pel > 0 then
  return 'pending'
end
release(KEYS[3], KEYS[5], ARGV[1], ARGV[2])
local st = redis.call('HGET', KEYS[1], 'status')
if st ~= 'queued' and st ~= 'running' then
  return 'cleared'
end
local err = cjson.encode({type = 'lost_from_queue',
  message = 'the job\'s queue entry disappeared before a worker stored a result (deleted or trimmed from the stream); submit it again'})
redis.call('HSET', KEYS[1], 'status', 'failed', 'error', err, 'finished_at', ARGV[4])
announce(KEYS[1], KEYS[4], ARGV[5], ARGV[2], ARGV[4])
return 'failed'
