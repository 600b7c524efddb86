-- Authenticate and rate-limit one request (every route but submissions,
-- which do this inside submit.lua). Prefixed with lib/authorize.lua.
-- KEYS[1] API key record (read in 'key' mode only), KEYS[2] rate-limit state of the subject
-- ARGV[1] mode ('key' | 'anon'), ARGV[2] anon rate per s, ARGV[3] anon burst
-- Returns {status, owner, limit, remaining, retry_after_ms, reset_ms} (see lib/authorize.lua)
local r = authorize(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
r[7] = nil
return r
