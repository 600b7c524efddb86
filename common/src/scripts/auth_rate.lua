-- Authenticate (optional) and rate-limit one request with GCRA, in one round trip.
-- Time comes from the Redis server so every API replica shares one clock.
-- KEYS[1] api key record ("" in IP mode), KEYS[2] rate-limit state key prefix (subject appended)
-- ARGV[1] mode ("key" | "ip"), ARGV[2] subject for IP mode, ARGV[3] IP rate per s, ARGV[4] IP burst
-- Returns {status, owner, limit, remaining, retry_after_ms, reset_ms, secret}
local owner, rate, burst, secret, subject
if ARGV[1] == 'key' then
  local rec = redis.call('HMGET', KEYS[1], 'id', 'rate', 'burst', 'secret')
  if not rec[1] then
    return {'unauthorized', '', 0, 0, 0, 0, ''}
  end
  owner = rec[1]
  rate = tonumber(rec[2])
  burst = tonumber(rec[3])
  secret = rec[4] or ''
  subject = 'key:' .. owner
else
  owner = 'anon'
  rate = tonumber(ARGV[3])
  burst = tonumber(ARGV[4])
  secret = ''
  subject = 'ip:' .. ARGV[2]
end
if rate <= 0 then
  return {'ok', owner, 0, 0, 0, 0, secret}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = 1000.0 / rate
local key = KEYS[2] .. subject
local tat = tonumber(redis.call('GET', key) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if allow_at > now then
  return {'limited', owner, burst, 0, math.ceil(allow_at - now), math.ceil(tat - now), secret}
end
redis.call('SET', key, tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
local remaining = math.floor((now + burst * interval - new_tat) / interval)
return {'ok', owner, burst, remaining, 0, math.ceil(new_tat - now), secret}
