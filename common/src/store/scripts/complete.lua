-- Store a job's final result and acknowledge its entry in one step
-- (store::batch::complete_batch, pipelined per batch). The first writer wins:
-- a job already final is only acknowledged ('duplicate'), an expired one too
-- ('gone'). The entry is acknowledged and the job leaves its owner's backlog
-- on every path (lib/settle.lua); a stored result queues the webhook and wakes
-- the job's waiters.
-- KEYS[1] job hash, KEYS[2] stream, KEYS[3] outbox, KEYS[4] entry index,
-- KEYS[5] the owner's backlog (Keys::backlog of the entry's backlog subject)
-- ARGV[1] entry id, ARGV[2] group, ARGV[3] status (succeeded|failed), ARGV[4] field (result|error),
-- ARGV[5] json, ARGV[6] now ms, ARGV[7] done channel, ARGV[8] job id
-- Job hash fields read: status callback; written: status, result | error, finished_at,
-- result_writes (+1) [wh_status wh_attempts]
-- Returns 'stored' | 'duplicate' | 'gone'
local st = redis.call('HGET', KEYS[1], 'status')
acknowledge(KEYS[2], ARGV[2], KEYS[4], KEYS[5], ARGV[1], ARGV[8])
if not st then
  return 'gone'
end
if is_final(st) then
  return 'duplicate'
end
redis.call('HSET', KEYS[1], 'status', ARGV[3], ARGV[4], ARGV[5], 'finished_at', ARGV[6])
redis.call('HINCRBY', KEYS[1], 'result_writes', 1)
announce(KEYS[1], KEYS[3], ARGV[7], ARGV[8], ARGV[6])
return 'stored'
