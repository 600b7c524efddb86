-- Lease due webhook deliveries (store::outbox::outbox_claim): members due now
-- move to now + lease, so a dispatcher that dies mid-delivery hands them on
-- when the lease runs out. Time comes from the Redis server, so every
-- dispatcher shares one clock.
-- KEYS[1] outbox; ARGV[1] lease ms, ARGV[2] limit
-- Returns the leased job ids.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), id)
end
return ids
