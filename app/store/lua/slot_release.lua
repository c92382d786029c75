-- slot_release.lua: give back the slot a task attempt holds on a server, once.
-- A second release of the same lease finds no field and changes nothing, so in_flight
-- can neither be freed twice nor go negative.
--
-- KEYS[1]  server hash        (tf:server:<id>)
-- KEYS[2]  server leases hash (tf:server:<id>:leases)
-- ARGV[1]  lease field '<task_id>:<attempt>'
--
-- Returns 1 if a slot was released, 0 if there was no such lease.

local cost = redis.call('HGET', KEYS[2], ARGV[1])
if not cost then
  return 0
end
redis.call('HDEL', KEYS[2], ARGV[1])
local left = redis.call('HINCRBY', KEYS[1], 'in_flight', -tonumber(cost))
if left < 0 then
  redis.call('HSET', KEYS[1], 'in_flight', 0)
end
return 1
