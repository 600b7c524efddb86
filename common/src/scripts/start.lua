-- A worker takes one stream entry: counts the attempt and marks the job running,
-- or settles it without running (already final, canceled, expired, attempts exhausted).
-- Every settling path removes the job from its owner's backlog (ZREM is idempotent).
-- The dead-letter entry keeps the request without its callback URL (a
-- receiver's token must not outlive the job); the stream is trimmed by age by
-- the worker (DEAD_LETTER_TTL_S) and by length here.
-- KEYS[1] job hash, KEYS[2] stream, KEYS[3] dead-letter stream, KEYS[4] outbox, KEYS[5] entry index,
-- KEYS[6] owner's backlog
-- ARGV[1] entry id, ARGV[2] group, ARGV[3] now ms, ARGV[4] max attempts,
-- ARGV[5] consumer name, ARGV[6] job id, ARGV[7] done channel, ARGV[8] dead-letter maxlen
local st = redis.call('HGET', KEYS[1], 'status')
if not st then
  redis.call('XACK', KEYS[2], ARGV[2], ARGV[1])
  redis.call('XDEL', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[5], ARGV[1])
  redis.call('ZREM', KEYS[6], ARGV[6])
  return {'gone', 0}
end
if st == 'succeeded' or st == 'failed' or st == 'canceled' then
  redis.call('XACK', KEYS[2], ARGV[2], ARGV[1])
  redis.call('XDEL', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[5], ARGV[1])
  redis.call('ZREM', KEYS[6], ARGV[6])
  return {'final', 0}
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if attempts > tonumber(ARGV[4]) then
  local last = redis.call('HGET', KEYS[1], 'last_error') or 'the worker processing it stopped before storing a result'
  local err = cjson.encode({type = 'attempts_exhausted', message = 'gave up after ' .. (attempts - 1) .. ' attempts: ' .. last})
  redis.call('HSET', KEYS[1], 'status', 'failed', 'error', err, 'finished_at', ARGV[3], 'attempts', attempts - 1)
  -- Blank the callback URL in the request echo (serde_json's compact output)
  -- without re-encoding it: cjson would round seeds (u64) to 14 digits.
  local request = redis.call('HGET', KEYS[1], 'request') or ''
  local tag = '"callback_url":"'
  local from = string.find(request, tag, 1, true)
  if from then
    local i = from + #tag
    while i <= #request do
      local ch = string.sub(request, i, i)
      if ch == '\\' then
        i = i + 2
      elseif ch == '"' then
        break
      else
        i = i + 1
      end
    end
    request = string.sub(request, 1, from - 1) .. '"callback_url":null' .. string.sub(request, i + 1)
  end
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', 'job', ARGV[6], 'error', err, 'attempts', attempts - 1,
    'request', request)
  redis.call('ZREM', KEYS[6], ARGV[6])
  redis.call('XACK', KEYS[2], ARGV[2], ARGV[1])
  redis.call('XDEL', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[5], ARGV[1])
  if redis.call('HGET', KEYS[1], 'callback') == '1' then
    redis.call('HSET', KEYS[1], 'wh_status', 'pending', 'wh_attempts', 0)
    redis.call('ZADD', KEYS[4], ARGV[3], ARGV[6])
  end
  redis.call('PUBLISH', ARGV[7], ARGV[6])
  return {'dead', attempts - 1}
end
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[3])
return {'run', attempts}
