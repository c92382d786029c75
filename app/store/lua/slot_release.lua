-- slot_release.lua: give back the slot a task attempt holds on a server, once.
-- A second release of the same lease finds no field and changes nothing, so in_flight
-- can neither be freed twice nor go negative. The lease is kept while the task is
-- running that very attempt on that server: a dispatcher that lost the race to start
-- the attempt cannot free the slot the winner is using (two dispatchers of one attempt
-- share its lease).
--
-- KEYS[1]  server hash        (tf:server:<id>)
-- KEYS[2]  server leases hash (tf:server:<id>:leases)
-- KEYS[3]  task hash          (tf:task:<task_id>)
-- ARGV[1]  lease field '<task_id>:<attempt>'
-- ARGV[2]  attempt
-- ARGV[3]  server id
--
-- Returns 1 if a slot was released, 0 if there was no such lease, -1 if it is in use.

local cost = redis.call('HGET', KEYS[2], ARGV[1])
if not cost then
  return 0
end
local task = redis.call('HMGET', KEYS[3], 'status', 'attempt', 'server_id')
if task[1] == 'PROCESSING' and task[2] == ARGV[2] and task[3] == ARGV[3] then
  return -1
end
redis.call('HDEL', KEYS[2], ARGV[1])
local left = redis.call('HINCRBY', KEYS[1], 'in_flight', -tonumber(cost))
if left < 0 then
  redis.call('HSET', KEYS[1], 'in_flight', 0)
end
return 1
