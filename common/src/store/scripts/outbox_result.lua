-- Record one webhook attempt's outcome (store::outbox::outbox_result).
-- KEYS[1] outbox, KEYS[2] job hash
-- ARGV[1] job id, ARGV[2] outcome (delivered|failed), ARGV[3] error of a failed attempt,
-- ARGV[4] max attempts, ARGV[5] delay ms before the next attempt
-- Job hash fields written: wh_attempts (+1), wh_status, wh_delivered_at | wh_last_error
-- Returns 'gone' (job hash expired: dropped from the outbox) | 'delivered' | 'retrying' | 'dead_lettered'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 'gone'
end
local attempts = redis.call('HINCRBY', KEYS[2], 'wh_attempts', 1)
if ARGV[2] == 'delivered' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HSET', KEYS[2], 'wh_status', 'delivered', 'wh_delivered_at', now)
  return 'delivered'
end
redis.call('HSET', KEYS[2], 'wh_last_error', ARGV[3])
if attempts >= tonumber(ARGV[4]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HSET', KEYS[2], 'wh_status', 'dead_lettered')
  return 'dead_lettered'
end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[5]), ARGV[1])
redis.call('HSET', KEYS[2], 'wh_status', 'retrying')
return 'retrying'
