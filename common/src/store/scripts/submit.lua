-- Submit one job in one round trip: authenticate and rate-limit the caller
-- (lib/authorize.lua, prepended), answer an idempotent replay or conflict,
-- apply admission control, then write the job hash, the stream entry, the
-- entry index and the owner's backlog.
-- Idempotency: the job id of a submission with an Idempotency-Key is derived
-- from the tenant and the key (store::submit), so KEYS[3] is both the new
-- job's hash and the record of an earlier submission with that key: a hash
-- already there answers 'replay' with its current status (same request) or
-- 'conflict' (another request). The record lives as long as the job.
-- The stream is never trimmed here: ARGV[9] is a hard cap on its length that
-- refuses the submission ('full'), so an accepted job's entry stays until a
-- worker acknowledges it. ARGV[10] caps the backlog (entries not yet
-- acknowledged: queued or being generated) the same way.
-- The owner's backlog (a sorted set of its queued/running job ids, see
-- Keys::backlog) enforces the per-key quota ARGV[11] ('quota'); it is written
-- only when a quota applies (ARGV[11] > 0), since nothing else reads it.
-- KEYS[1] API key record (read in 'key' mode only), KEYS[2] rate-limit state,
-- KEYS[3] job hash, KEYS[4] stream, KEYS[5] entry index, KEYS[6] the owner's backlog
-- ARGV[1] mode ('key' | 'anon'), ARGV[2] anon rate per s, ARGV[3] anon burst,
-- ARGV[4] job id, ARGV[5] request echo json, ARGV[6] validated request for the worker,
-- ARGV[7] now ms, ARGV[8] ttl s, ARGV[9] stream length cap (0 = none), ARGV[10] max backlog (0 = none),
-- ARGV[11] per-owner backlog quota (0 = none),
-- ARGV[12] request fingerprint ('' = no Idempotency-Key), ARGV[13] '1' when the request has a callback,
-- ARGV[14] webhook secret when the tenant has none ('' = the dispatcher's), ARGV[15] backlog subject
-- Job hash fields written: id owner backlog status request attempts created_at callback [idem_body] [wh_secret]
-- Stream entry fields: job req t o b
-- Returns {status, value, limit, remaining, retry_after_ms, reset_ms, owner} where status is
-- 'created' (value: job id) | 'replay' (value: the job's status) | 'conflict' | 'full' (value: backlog)
-- | 'quota' (value: the owner's queued jobs) | 'limited' | 'unauthorized'
local auth = authorize(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
local function reply(status, value)
  return {status, value, auth[3], auth[4], auth[5], auth[6], auth[2]}
end
if auth[1] ~= 'ok' then
  return reply(auth[1], '')
end
local owner = auth[2]
if ARGV[12] ~= '' then
  local prev = redis.call('HMGET', KEYS[3], 'status', 'idem_body', 'owner')
  if prev[1] then
    if prev[2] == ARGV[12] and prev[3] == owner then
      return reply('replay', prev[1])
    end
    return reply('conflict', '')
  end
end
-- Admission: every entry in the stream is unacknowledged (settling XDELs it),
-- so its length is the backlog, queued plus being generated: one XLEN.
local len = redis.call('XLEN', KEYS[4])
local cap = tonumber(ARGV[9])
if cap > 0 and len >= cap then
  return reply('full', tostring(len))
end
local max = tonumber(ARGV[10])
if max > 0 and len >= max then
  return reply('full', tostring(len))
end
-- The owner's backlog is kept only while a quota reads it. Members whose job
-- hashes expired are purged only when they would refuse the submission.
local quota = tonumber(ARGV[11])
if quota > 0 then
  local mine = redis.call('ZCARD', KEYS[6])
  if mine >= quota then
    redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', tonumber(ARGV[7]) - tonumber(ARGV[8]) * 1000)
    mine = redis.call('ZCARD', KEYS[6])
    if mine >= quota then
      return reply('quota', tostring(mine))
    end
  end
end
local fields = {'id', ARGV[4], 'owner', owner, 'backlog', ARGV[15], 'status', 'queued', 'request', ARGV[5],
  'attempts', 0, 'created_at', ARGV[7], 'callback', ARGV[13]}
if ARGV[12] ~= '' then
  table.insert(fields, 'idem_body')
  table.insert(fields, ARGV[12])
end
if ARGV[13] == '1' then
  local secret = auth[7]
  if secret == '' then secret = ARGV[14] end
  if secret ~= '' then
    table.insert(fields, 'wh_secret')
    table.insert(fields, secret)
  end
end
redis.call('HSET', KEYS[3], unpack(fields))
redis.call('EXPIRE', KEYS[3], ARGV[8])
local entry = redis.call('XADD', KEYS[4], '*', 'job', ARGV[4], 'req', ARGV[6], 't', ARGV[7], 'o', owner, 'b', ARGV[15])
if quota > 0 then
  redis.call('ZADD', KEYS[6], ARGV[7], ARGV[4])
  redis.call('EXPIRE', KEYS[6], ARGV[8])
end
redis.call('HSET', KEYS[5], entry, ARGV[4])
return reply('created', ARGV[4])
