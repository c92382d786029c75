-- stats_cut.lua: hand the live statistics counters to a flush. If an earlier flush
-- did not finish (its batch is still here), the same batch is handed out again, so a
-- flush that crashed is completed, never counted twice (the database remembers which
-- batch ids it applied).
--
-- KEYS[1] live: live counters hash (tf:stats:live)
-- KEYS[2] batch: batch hash (tf:stats:batch)
-- ARGV[1] batch_id: id for a new batch
-- ARGV[2] now_ms: now in ms (recorded as the batch's cut time)
--
-- Returns the batch's flat HGETALL (with '__batch' and '__cut_ms'), or {} when there
-- is nothing to flush.

local live = KEYS[1]
local batch = KEYS[2]
local batch_id = ARGV[1]
local now_ms = ARGV[2]

if redis.call('EXISTS', batch) == 0 then
  if redis.call('EXISTS', live) == 0 then
    return {}
  end
  redis.call('RENAME', live, batch)
  redis.call('HSET', batch, '__batch', batch_id, '__cut_ms', now_ms)
end
return redis.call('HGETALL', batch)
