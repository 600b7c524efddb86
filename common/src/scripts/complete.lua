-- Store a job's final result and acknowledge its entry in one step. The first
-- writer wins: a job already final is only acknowledged ('duplicate').
-- The job leaves its owner's backlog on every path (ZREM is idempotent).
-- KEYS[1] job hash, KEYS[2] stream, KEYS[3] outbox, KEYS[4] entry index, KEYS[5] owner's backlog
-- ARGV[1] entry id, ARGV[2] group, ARGV[3] status (succeeded|failed), ARGV[4] field (result|error),
-- ARGV[5] json, ARGV[6] now ms, ARGV[7] done channel, ARGV[8] job id
local st = redis.call('HGET', KEYS[1], 'status')
redis.call('XACK', KEYS[2], ARGV[2], ARGV[1])
redis.call('XDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[8])
if not st then
  return 'gone'
end
if st == 'succeeded' or st == 'failed' or st == 'canceled' then
  return 'duplicate'
end
redis.call('HSET', KEYS[1], 'status', ARGV[3], ARGV[4], ARGV[5], 'finished_at', ARGV[6])
redis.call('HINCRBY', KEYS[1], 'result_writes', 1)
if redis.call('HGET', KEYS[1], 'callback') == '1' then
  redis.call('HSET', KEYS[1], 'wh_status', 'pending', 'wh_attempts', 0)
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[8])
end
redis.call('PUBLISH', ARGV[7], ARGV[8])
return 'stored'
