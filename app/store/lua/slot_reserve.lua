-- slot_reserve.lua: pick the least-loaded eligible server and reserve a slot on it.
-- A server is eligible when its status is 'online' and in_flight + cost fits
-- max_concurrent. Load is in_flight / max_concurrent; ties go to the earlier key pair,
-- so the caller shuffles candidates to spread ties. A lease already held by this task
-- attempt is returned as is (a redelivered dispatch reserves nothing twice).
--
-- KEYS[2i-1]  server hash        (tf:server:<id>)  fields: id, status, max_concurrent, in_flight
-- KEYS[2i]    server leases hash (tf:server:<id>:leases)  '<task>:<attempt>' -> cost
-- ARGV[1]     lease field '<task_id>:<attempt>'
-- ARGV[2]     slot cost (integer >= 1)
--
-- Returns the chosen server id, or false when no server has room.

local lease, cost = ARGV[1], tonumber(ARGV[2])
local best, best_load = nil, nil

for i = 1, #KEYS, 2 do
  if redis.call('HEXISTS', KEYS[i + 1], lease) == 1 then
    return redis.call('HGET', KEYS[i], 'id')
  end
  local s = redis.call('HMGET', KEYS[i], 'status', 'max_concurrent', 'in_flight')
  local max, in_flight = tonumber(s[2]), tonumber(s[3] or '0')
  if s[1] == 'online' and max and in_flight + cost <= max then
    local load = in_flight / max
    if best_load == nil or load < best_load then
      best, best_load = i, load
    end
  end
end

if best == nil then
  return false
end
redis.call('HSET', KEYS[best + 1], lease, cost)
redis.call('HINCRBY', KEYS[best], 'in_flight', cost)
return redis.call('HGET', KEYS[best], 'id')
