-- lb_restore.lua: put back the slot of a task attempt that the database says is running
-- on a server, after Redis lost it (restart without persistence). Does nothing if the
-- lease is there already, so it can run any number of times. Also puts back the
-- attempt's holds on the concurrency limits of its type and of all tasks.
--
-- KEYS[1] pool: pool hash (tf:pool:<p>)
-- KEYS[2] avail: pool avail zset (tf:pool:<p>:avail)
-- KEYS[3] leases: pool leases hash (tf:pool:<p>:leases)
-- KEYS[4] algorithm_key: the algorithm in use (tf:lb:algorithm)
-- KEYS[5] fresh_set: pool fresh zset (tf:pool:<p>:fresh), sid -> ms its figures go stale
-- KEYS[6] type_held: the holds of the task type's concurrency limit
--         (tf:limit-held:<type>), lease -> ms; restored when that limit exists
-- KEYS[7] type_limit: the task type's limit hash (tf:limit:<type>)
-- KEYS[8] all_held: the holds of the limit of all tasks (tf:limit-held:*)
-- KEYS[9] all_limit: the limit of all tasks (tf:limit:*)
-- ARGV[1] lease: lease field '<task_id>:<attempt>'
-- ARGV[2] server_id: server id
-- ARGV[3] cost: slot cost
-- ARGV[4] now_ms: now in ms (stamped on the lease)
-- ARGV[5] penalty_ms: no-history EWMA penalty in ms
--
-- Returns 1 if the slot was restored, 0 if the lease existed.

local pool = KEYS[1]
local avail = KEYS[2]
local leases = KEYS[3]
local algorithm_key = KEYS[4]
local fresh_set = KEYS[5]
local type_held = KEYS[6]
local type_limit = KEYS[7]
local all_held = KEYS[8]
local all_limit = KEYS[9]
local lease = ARGV[1]
local server_id = ARGV[2]
local cost = ARGV[3]
local now_ms = tonumber(ARGV[4])
local penalty_ms = tonumber(ARGV[5])

-- The attempt's holds on the limits that exist (published before the rebuild), even
-- when its lease survived.
if redis.call('EXISTS', type_limit) == 1 then
  redis.call('HSETNX', type_held, lease, now_ms)
end
if redis.call('EXISTS', all_limit) == 1 then
  redis.call('HSETNX', all_held, lease, now_ms)
end
if redis.call('HSETNX', leases, lease, server_id .. '|' .. cost .. '|' .. now_ms) == 0 then
  return 0
end
redis.call('HINCRBY', pool, server_id .. '|used', tonumber(cost))
reindex(pool, avail, fresh_set, server_id, algorithm(algorithm_key), penalty_ms, now_ms)
return 1
