-- Shared fragment (scripts/lib/, prepended at compile time; see scripts.rs):
-- the steps every script that settles a job repeats, written once.
-- Every key comes from the caller's KEYS; the job-hash fields and statuses are
-- those of store::fields (job::STATUS, CALLBACK, WH_STATUS, WH_ATTEMPTS).
--
-- is_final(status): true for 'succeeded' | 'failed' | 'canceled'.
-- release(index, backlog, entry, job): the entry leaves the entry index and the
--   job its owner's backlog (HDEL, ZREM: both idempotent).
-- acknowledge(stream, group, index, backlog, entry, job): XACK + XDEL the
--   entry, then release: nothing of the entry is left.
-- announce(job_key, outbox, channel, job, now): queue the webhook (wh_status
--   pending, due now) when the job has a callback, and wake the job's waiters.
local function is_final(status)
  return status == 'succeeded' or status == 'failed' or status == 'canceled'
end
local function release(index, backlog, entry, job)
  redis.call('HDEL', index, entry)
  redis.call('ZREM', backlog, job)
end
local function acknowledge(stream, group, index, backlog, entry, job)
  redis.call('XACK', stream, group, entry)
  redis.call('XDEL', stream, entry)
  release(index, backlog, entry, job)
end
local function announce(job_key, outbox, channel, job, now)
  if redis.call('HGET', job_key, 'callback') == '1' then
    redis.call('HSET', job_key, 'wh_status', 'pending', 'wh_attempts', 0)
    redis.call('ZADD', outbox, now, job)
  end
  redis.call('PUBLISH', channel, job)
end
