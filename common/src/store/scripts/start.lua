-- A worker takes one stream entry (store::batch::start_batch, pipelined per
-- batch): counts the attempt and marks the job running, or settles it without
-- running (gone: the job hash expired; final: already succeeded, failed or
-- canceled; dead: attempts exhausted). Every settling path acknowledges the
-- entry and removes the job from its owner's backlog (lib/settle.lua).
-- The dead-letter entry keeps the request without its callback URL (a
-- receiver's token must not outlive the job); the stream is trimmed by age by
-- the worker (DEAD_LETTER_TTL_S) and by length here.
-- KEYS[1] job hash, KEYS[2] stream, KEYS[3] dead-letter stream, KEYS[4] outbox, KEYS[5] entry index,
-- KEYS[6] the owner's backlog (Keys::backlog of the entry's backlog subject)
-- ARGV[1] entry id, ARGV[2] group, ARGV[3] now ms, ARGV[4] max attempts,
-- ARGV[5] job id, ARGV[6] done channel, ARGV[7] dead-letter maxlen
-- Job hash fields read: status attempts last_error request callback;
-- written: attempts, status started_at | status error finished_at [wh_status wh_attempts]
-- Dead-letter entry fields: job error attempts request
-- Returns {'run', attempt} | {'gone', 0} | {'final', 0} | {'dead', attempts made}
local st = redis.call('HGET', KEYS[1], 'status')
if not st then
  acknowledge(KEYS[2], ARGV[2], KEYS[5], KEYS[6], ARGV[1], ARGV[5])
  return {'gone', 0}
end
if is_final(st) then
  acknowledge(KEYS[2], ARGV[2], KEYS[5], KEYS[6], ARGV[1], ARGV[5])
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
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'job', ARGV[5], 'error', err, 'attempts', attempts - 1,
    'request', request)
  acknowledge(KEYS[2], ARGV[2], KEYS[5], KEYS[6], ARGV[1], ARGV[5])
  announce(KEYS[1], KEYS[4], ARGV[6], ARGV[5], ARGV[3])
  return {'dead', attempts - 1}
end
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[3])
return {'run', attempts}
