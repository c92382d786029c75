-- client_count_begin.lua: start a recount of a client's unfinished tasks. One recount
-- runs at a time per client (it holds 'counting' until lease end or client_count_end.lua);
-- an unforced one also waits `min_interval_ms` after the last one began. The caller
-- counts the database's unfinished tasks after this returns; every task stored after
-- that count is settled after this mark, so 'settled' minus the mark keeps it.
--
-- KEYS[1] usage: the client's hash (tf:client:<sub>)
-- ARGV[1] now_ms: now
-- ARGV[2] lease_ms: how long the recount may take before another may start
-- ARGV[3] min_interval_ms: an unforced recount waits this long after the last began
-- ARGV[4] forced: 1 when the hash has no count at all (a recount is needed now)
-- ARGV[5] ttl_ms: the hash expires after this long without a submission
--
-- Returns {generation, settled}: the generation client_count_end.lua must be given (0:
-- no recount now, another runs or one ran too recently) and settled now (the mark).

local usage = KEYS[1]
local now_ms = tonumber(ARGV[1])
local lease_ms = tonumber(ARGV[2])
local min_interval_ms = tonumber(ARGV[3])
local forced = tonumber(ARGV[4])
local ttl_ms = tonumber(ARGV[5])

local state = redis.call('HMGET', usage, 'settled', 'counting', 'count_begun_ms')
local settled = tonumber(state[1]) or 0
if tonumber(state[2] or 0) > now_ms then
  return {0, settled}
end
if forced ~= 1 and now_ms - tonumber(state[3] or 0) < min_interval_ms then
  return {0, settled}
end
local generation = redis.call('HINCRBY', usage, 'gen', 1)
redis.call('HSET', usage, 'counting', now_ms + lease_ms, 'count_begun_ms', now_ms)
redis.call('PEXPIRE', usage, ttl_ms)
return {generation, settled}
