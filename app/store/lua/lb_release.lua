-- lb_release.lua: end a task attempt's hold on a server: free its slot once, record
-- the outcome in the server's metrics, and run the circuit breaker.
-- The slot is kept while the task is running that very attempt on that server: a
-- dispatcher that lost the race to start the attempt cannot free the winner's slot.
-- Metrics and the breaker move only when the slot is actually freed, so a repeated
-- release counts nothing twice.
--
-- KEYS[1] pool: pool hash (tf:pool:<p>)
-- KEYS[2] avail: pool avail zset (tf:pool:<p>:avail)
-- KEYS[3] leases: pool leases hash (tf:pool:<p>:leases)
--         '<task>:<attempt>' -> '<sid>|<cost>|<ms>'
-- KEYS[4] task: task hash (tf:task:<task_id>)
-- KEYS[5] server: server hash (tf:server:<sid>), metrics and breaker state
-- KEYS[6] sleeping: sleeping zset (tf:lb:sleeping), sid -> ms when it may take tasks again
-- KEYS[7] algorithm_key: the algorithm in use (tf:lb:algorithm)
-- KEYS[8] fresh_set: pool fresh zset (tf:pool:<p>:fresh), sid -> ms its figures go stale
-- KEYS[9] type_held: the holds of the task type's concurrency limit
--         (tf:limit-held:<type>), lease -> ms; the lease leaves them with the slot
-- KEYS[10] all_held: the holds of the limit of all tasks (tf:limit-held:*)
-- ARGV[1] lease: lease field '<task_id>:<attempt>'
-- ARGV[2] attempt: the attempt
-- ARGV[3] server_id: server id
-- ARGV[4] outcome: 'success' | 'failure' | 'busy' | 'none' (cancelled: no verdict)
-- ARGV[5] duration_ms: duration of the attempt in ms
-- ARGV[6] now_ms: now in ms
-- ARGV[7] ewma_alpha: EWMA weight of a new sample (0..1)
-- ARGV[8] circuit_failures: failures in a row that open the circuit
-- ARGV[9] circuit_open_ms: ms the circuit stays open
-- ARGV[10] busy_ms: ms until a busy server may be asked again
-- ARGV[11] penalty_ms: no-history EWMA penalty in ms
-- ARGV[12] min_age_ms: minimum lease age in ms (0: any); a younger lease is kept (the
--          reclaim job passes a minimum so it never takes a slot a dispatcher is about
--          to use)
-- ARGV[13] hold: '1' to record the outcome but keep the slot: the backend may still be
--          working on a call taskfleet gave up on (a predict timeout); the reclaim job
--          frees it once the lease is old enough
--
-- The attempt's holds on concurrency limits go with its slot (and stay with a kept one).
--
-- Returns 1 if the slot was freed, 2 if the outcome was recorded and the slot kept,
-- 0 if the attempt holds no slot on this server, -1 if it is in use, -2 if it is
-- younger than min_age_ms.

local pool = KEYS[1]
local avail = KEYS[2]
local leases = KEYS[3]
local task = KEYS[4]
local server = KEYS[5]
local sleeping = KEYS[6]
local algorithm_key = KEYS[7]
local fresh_set = KEYS[8]
local type_held = KEYS[9]
local all_held = KEYS[10]
local lease = ARGV[1]
local attempt = ARGV[2]
local server_id = ARGV[3]
local outcome = ARGV[4]
local duration_ms = tonumber(ARGV[5])
local now_ms = tonumber(ARGV[6])
local ewma_alpha = tonumber(ARGV[7])
local circuit_failures = tonumber(ARGV[8])
local circuit_open_ms = tonumber(ARGV[9])
local busy_ms = tonumber(ARGV[10])
local penalty_ms = tonumber(ARGV[11])
local min_age_ms = tonumber(ARGV[12])
local hold = ARGV[13]

local alg = algorithm(algorithm_key)

local held = redis.call('HGET', leases, lease)
if not held or string.sub(held, 1, #server_id + 1) ~= server_id .. '|' then
  return 0
end
local t = redis.call('HMGET', task, 'status', 'attempt', 'server_id')
if t[1] == 'PROCESSING' and t[2] == attempt and t[3] == server_id then
  return -1
end
local cost, reserved_ms = string.match(held, '|(%d+)|(%d+)$')
cost = tonumber(cost)
if now_ms - tonumber(reserved_ms) < min_age_ms then
  return -2
end

local keep_slot = hold == '1'
if keep_slot then
  redis.call('HSET', leases, lease, server_id .. '|' .. cost .. '|' .. now_ms) -- reclaimed later
else
  redis.call('HDEL', leases, lease)
  redis.call('HDEL', type_held, lease)
  redis.call('HDEL', all_held, lease)
  if redis.call('HINCRBY', pool, server_id .. '|used', -cost) < 0 then
    redis.call('HSET', pool, server_id .. '|used', 0)
  end
end

local was_probe = pf(pool, server_id, 'probe') == '2'
if outcome == 'success' or outcome == 'failure' then
  redis.call('HINCRBY', server, 'processed', 1)
  redis.call('HINCRBY', server, 'resp_total_ms', duration_ms)
  redis.call('HSET', server, 'last_active_ms', now_ms)
  local old = tonumber(pf(pool, server_id, 'ewma') or '')
  local ewma = duration_ms
  if old ~= nil then ewma = ewma_alpha * duration_ms + (1 - ewma_alpha) * old end
  redis.call('HSET', pool, server_id .. '|ewma', ewma)
  redis.call('HSET', server, 'ewma_ms', ewma)
end
if outcome == 'success' then
  redis.call('HINCRBY', server, 'successes', 1)
  redis.call('HSET', server, 'fails_in_row', 0)
  if was_probe or redis.call('HGET', server, 'circuit') == 'half_open' then
    redis.call('HSET', server, 'circuit', 'closed')
    redis.call('HDEL', pool, server_id .. '|probe')
  end
elseif outcome == 'failure' then
  redis.call('HINCRBY', server, 'failures', 1)
  local in_row = redis.call('HINCRBY', server, 'fails_in_row', 1)
  if was_probe or in_row >= circuit_failures then
    local until_ms = now_ms + circuit_open_ms
    redis.call('HSET', server, 'circuit', 'open', 'circuit_until_ms', until_ms)
    redis.call('HSET', pool, server_id .. '|sleep', 1)
    redis.call('HDEL', pool, server_id .. '|probe')
    redis.call('ZADD', sleeping, until_ms, server_id)
  end
elseif outcome == 'busy' then
  local until_ms = now_ms + busy_ms
  redis.call('HSET', server, 'busy_until_ms', until_ms)
  redis.call('HSET', pool, server_id .. '|sleep', 1)
  local wake_ms = tonumber(redis.call('ZSCORE', sleeping, server_id) or 0)
  redis.call('ZADD', sleeping, math.max(until_ms, wake_ms), server_id)
  if was_probe then redis.call('HSET', pool, server_id .. '|probe', 1) end
elseif was_probe then
  redis.call('HSET', pool, server_id .. '|probe', 1)
end
reindex(pool, avail, fresh_set, server_id, alg, penalty_ms, now_ms)
if keep_slot then return 2 end
return 1
