-- stats_drop.lua: delete a flushed batch, only if it is still the one named (a second
-- flusher must never delete a newer batch it did not apply).
--
-- KEYS[1] batch: batch hash (tf:stats:batch)
-- ARGV[1] batch_id: the batch id that was applied
--
-- Returns 1 if deleted, 0 otherwise.

local batch = KEYS[1]
local batch_id = ARGV[1]

if redis.call('HGET', batch, '__batch') == batch_id then
  return redis.call('DEL', batch)
end
return 0
