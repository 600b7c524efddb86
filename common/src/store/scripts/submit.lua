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
-- worker acknowledges it. ARGV[10] caps the group's backlog (lag) the same way.
-- The owner's backlog (a sorted set of its queued/running job ids, see
-- Keys::backlog) enforces the per-key quota ARGV[12] ('quota'); members older
-- than the TTL are purged first, since their job hashes have expired.
-- KEYS[1] API key record (read in 'key' mode only), KEYS[2] rate-limit state,
-- KEYS[3] job hash, KEYS[4] stream, KEYS[5] entry index, KEYS[6] the owner's backlog
-- ARGV[1] mode ('key' | 'anon'), ARGV[2] anon rate per s, ARGV[3] anon burst,
-- ARGV[4] job id, ARGV[5] request echo json, ARGV[6] validated request for the worker,
-- ARGV[7] now ms, ARGV[8] ttl s, ARGV[9] stream length cap (0 = none), ARGV[10] max backlog (0 = none),
-- ARGV[11] group, ARGV[12] per-owner backlog quota (0 = none),
-- ARGV[13] request fingerprint ('' = no Idempotency-Key), ARGV[14] '1' when the request has a callback,
-- ARGV[15] webhook secret when the tenant has none ('' = the dispatcher's), ARGV[16] backlog subject
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
if ARGV[13] ~= '' then
  local prev = redis.call('HMGET', KEYS[3], 'status', 'idem_body', 'owner')
  if prev[1] then
    if prev[2] == ARGV[13] and prev[3] == owner then
      return reply('replay', prev[1])
    end
    return reply('conflict', '')
  end
end
local cap = tonumber(ARGV[9])
if cap > 0 then
  local len = redis.call('XLEN', KEYS[4])
  if len >= cap then
    return reply('full', tostring(len))
  end
end
local max = tonumber(ARGV[10])
if max > 0 then
  local backlog = 0
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[4])
  local found = false
  if ok then
    for _, g in ipairs(groups) do
      local name, lag, pending
      for i = 1, #g, 2 do
        if g[i] == 'name' then name = g[i + 1] end
        if g[i] == 'lag' then lag = g[i + 1] end
        if g[i] == 'pending' then pending = g[i + 1] end
      end
      if name == ARGV[11] then
        found = true
        if lag then
          backlog = lag
        else
          backlog = redis.call('XLEN', KEYS[4]) - (pending or 0)
        end
      end
    end
  end
  if not found then
    backlog = redis.call('XLEN', KEYS[4])
  end
  if backlog >= max then
    return reply('full', tostring(backlog))
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', tonumber(ARGV[7]) - tonumber(ARGV[8]) * 1000)
local quota = tonumber(ARGV[12])
if quota > 0 then
  local mine = redis.call('ZCARD', KEYS[6])
  if mine >= quota then
    return reply('quota', tostring(mine))
  end
end
local fields = {'id', ARGV[4], 'owner', owner, 'backlog', ARGV[16], 'status', 'queued', 'request', ARGV[5],
  'attempts', 0, 'created_at', ARGV[7], 'callback', ARGV[14]}
if ARGV[13] ~= '' then
  table.insert(fields, 'idem_body')
  table.insert(fields, ARGV[13])
end
if ARGV[14] == '1' then
  local secret = auth[7]
  if secret == '' then secret = ARGV[15] end
  if secret ~= '' then
    table.insert(fields, 'wh_secret')
    table.insert(fields, secret)
  end
end
redis.call('HSET', KEYS[3], unpack(fields))
redis.call('EXPIRE', KEYS[3], ARGV[8])
local entry = redis.call('XADD', KEYS[4], '*', 'job', ARGV[4], 'req', ARGV[6], 't', ARGV[7], 'o', owner, 'b', ARGV[16])
redis.call('ZADD', KEYS[6], ARGV[7], ARGV[4])
redis.call('EXPIRE', KEYS[6], ARGV[8])
redis.call('HSET', KEYS[5], entry, ARGV[4])
return reply('created', ARGV[4])
