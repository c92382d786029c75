-- stats_cut.lua: hand the live statistics counters to a flush. If an earlier flush
-- did not finish (its batch is still here), the same batch is handed out again, so a
-- flush that crashed is completed, never counted twice (the database remembers which
-- batch ids it applied).
--
-- KEYS[1]  live counters hash  (tf:stats:live)
-- KEYS[2]  batch hash          (tf:stats:batch)
-- ARGV[1]  id for a new batch
-- ARGV[2]  now_ms (recorded as the batch's cut time)
--
-- Returns the batch's flat HGETALL (with '__batch' and '__cut_ms'), or {} when there
-- is nothing to flush.

if redis.call('EXISTS', KEYS[2]) == 0 then
  if redis.call('EXISTS', KEYS[1]) == 0 then
    return {}
  end
  redis.call('RENAME', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[2], '__batch', ARGV[1], '__cut_ms', ARGV[2])
end
return redis.call('HGETALL', KEYS[2])
