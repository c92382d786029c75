-- stats_drop.lua: delete a flushed batch, only if it is still the one named (a second
-- flusher must never delete a newer batch it did not apply).
--
-- KEYS[1]  batch hash  (tf:stats:batch)
-- ARGV[1]  the batch id that was applied
--
-- Returns 1 if deleted, 0 otherwise.

if redis.call('HGET', KEYS[1], '__batch') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
