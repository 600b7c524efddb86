-- Shared fragment (scripts/lib/, prepended at compile time; see scripts.rs):
-- authenticate (optional) and rate-limit one request with GCRA. Time comes
-- from the Redis server so every API replica shares one clock.
-- record_key: the API key record (read in 'key' mode only); rate_key: the
-- limiter state of the subject (the key, or the client IP in 'anon' mode).
-- Returns {status ('ok'|'limited'|'unauthorized'), owner, limit, remaining,
-- retry_after_ms, reset_ms, webhook secret}.
local function authorize(record_key, rate_key, mode, anon_rate, anon_burst)
  local owner, rate, burst, secret
  if mode == 'key' then
    local rec = redis.call('HMGET', record_key, 'id', 'rate', 'burst', 'secret')
    if not rec[1] then
      return {'unauthorized', '', 0, 0, 0, 0, ''}
    end
    owner = rec[1]
    rate = tonumber(rec[2])
    burst = tonumber(rec[3])
    secret = rec[4] or ''
  else
    owner = 'anon'
    rate = tonumber(anon_rate)
    burst = tonumber(anon_burst)
    secret = ''
  end
  if rate <= 0 then
    return {'ok', owner, 0, 0, 0, 0, secret}
  end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local interval = 1000.0 / rate
  local tat = tonumber(redis.call('GET', rate_key) or '0')
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  if allow_at > now then
    return {'limited', owner, burst, 0, math.ceil(allow_at - now), math.ceil(tat - now), secret}
  end
  redis.call('SET', rate_key, tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
  local remaining = math.floor((now + burst * interval - new_tat) / interval)
  return {'ok', owner, burst, remaining, 0, math.ceil(new_tat - now), secret}
end
