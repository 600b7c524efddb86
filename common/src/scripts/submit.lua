-- Submit one job atomically: idempotency check, admission control, job hash,
-- stream entry, idempotency record.
-- The stream is never trimmed here: ARGV[5] is a hard cap on its length that
-- refuses the submission ('full'), so an accepted job's entry stays until a
-- worker acknowledges it.
-- The owner's backlog (a sorted set of its queued/running job ids, see
-- Keys::backlog) enforces the per-key quota ARGV[13] ('quota'); members older
-- than the TTL are purged first, since their job hashes have expired.
-- KEYS[1] job hash, KEYS[2] stream, KEYS[3] idempotency key ("" when none), KEYS[4] entry index,
-- KEYS[5] the owner's backlog
-- ARGV[1] job id, ARGV[2] request json, ARGV[3] created_at ms, ARGV[4] ttl s,
-- ARGV[5] stream length cap (0 = unlimited), ARGV[6] owner, ARGV[7] body hash ("" when no idempotency key),
-- ARGV[8] max backlog (0 = unlimited), ARGV[9] group, ARGV[10] webhook secret ("" = use the dispatcher's),
-- ARGV[11] "1" when the request has a callback, ARGV[12] the validated request for the worker,
-- ARGV[13] per-owner backlog quota (0 = unlimited)
if ARGV[7] ~= '' then
  local prev = redis.call('GET', KEYS[3])
  if prev then
    local sep = string.find(prev, '|', 1, true)
    local pid = string.sub(prev, 1, sep - 1)
    if string.sub(prev, sep + 1) == ARGV[7] then
      return {'replay', pid}
    end
    return {'conflict', pid}
  end
end
local cap = tonumber(ARGV[5])
if cap > 0 then
  local len = redis.call('XLEN', KEYS[2])
  if len >= cap then
    return {'full', tostring(len)}
  end
end
local max = tonumber(ARGV[8])
if max > 0 then
  local backlog = 0
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[2])
  local found = false
  if ok then
    for _, g in ipairs(groups) do
      local name, lag, pending
      for i = 1, #g, 2 do
        if g[i] == 'name' then name = g[i + 1] end
        if g[i] == 'lag' then lag = g[i + 1] end
        if g[i] == 'pending' then pending = g[i + 1] end
      end
      if name == ARGV[9] then
        found = true
        if lag then
          backlog = lag
        else
          backlog = redis.call('XLEN', KEYS[2]) - (pending or 0)
        end
      end
    end
  end
  if not found then
    backlog = redis.call('XLEN', KEYS[2])
  end
  if backlog >= max then
    return {'full', tostring(backlog)}
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', tonumber(ARGV[3]) - tonumber(ARGV[4]) * 1000)
local quota = tonumber(ARGV[13])
if quota > 0 then
  local mine = redis.call('ZCARD', KEYS[5])
  if mine >= quota then
    return {'quota', tostring(mine)}
  end
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'owner', ARGV[6], 'status', 'queued', 'request', ARGV[2],
  'attempts', 0, 'created_at', ARGV[3], 'callback', ARGV[11])
if ARGV[10] ~= '' then
  redis.call('HSET', KEYS[1], 'wh_secret', ARGV[10])
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
local entry = redis.call('XADD', KEYS[2], '*', 'job', ARGV[1], 'req', ARGV[12], 't', ARGV[3], 'o', ARGV[6])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[5], ARGV[4])
redis.call('HSET', KEYS[4], entry, ARGV[1])
if ARGV[7] ~= '' then
  redis.call('SET', KEYS[3], ARGV[1] .. '|' .. ARGV[7], 'EX', ARGV[4])
end
return {'created', ARGV[1]}
