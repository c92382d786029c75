-- lb_release.lua: end a task attempt's hold on a server: free its slot once, record
-- the outcome in the server's metrics, and run the circuit breaker.
-- The slot is kept while the task is running that very attempt on that server: a
-- dispatcher that lost the race to start the attempt cannot free the winner's slot.
-- Metrics and the breaker move only when the slot is actually freed, so a repeated
-- release counts nothing twice.
--
-- KEYS[1]  pool hash        (tf:pool:<p>)
-- KEYS[2]  pool avail zset  (tf:pool:<p>:avail)
-- KEYS[3]  pool leases hash (tf:pool:<p>:leases)  '<task>:<attempt>' -> '<sid>|<cost>|<ms>'
-- KEYS[4]  task hash        (tf:task:<task_id>)
-- KEYS[5]  server hash      (tf:server:<sid>)  metrics and breaker state
-- KEYS[6]  sleeping zset    (tf:lb:sleeping)   sid -> ms when it may take tasks again
-- KEYS[7]  the algorithm in use (tf:lb:algorithm)
-- ARGV[1]  lease field '<task_id>:<attempt>'
-- ARGV[2]  attempt
-- ARGV[3]  server id
-- ARGV[4]  outcome: 'success' | 'failure' | 'busy' | 'none' (cancelled: no verdict)
-- ARGV[5]  duration of the attempt in ms
-- ARGV[6]  now_ms
-- ARGV[7]  EWMA weight of a new sample (0..1)
-- ARGV[8]  failures in a row that open the circuit
-- ARGV[9]  ms the circuit stays open
-- ARGV[10] ms until a busy server may be asked again
-- ARGV[11] no-history EWMA penalty in ms
-- ARGV[12] minimum lease age in ms (0: any); a younger lease is kept (the reclaim job
--          passes a minimum so it never takes a slot a dispatcher is about to use)
-- ARGV[13] '1' to record the outcome but keep the slot: the backend may still be
--          working on a call taskfleet gave up on (a predict timeout); the reclaim job
--          frees it once the lease is old enough
--
-- Returns 1 if the slot was freed, 2 if the outcome was recorded and the slot kept,
-- 0 if the attempt holds no slot on this server, -1 if it is in use, -2 if it is
-- younger than ARGV[12].

local pool, avail, leases, task, server, sleeping = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local lease, sid, outcome = ARGV[1], ARGV[3], ARGV[4]
local duration, now = tonumber(ARGV[5]), tonumber(ARGV[6])
local alg, alpha = algorithm(KEYS[7]), tonumber(ARGV[7])

local held = redis.call('HGET', leases, lease)
if not held or string.sub(held, 1, #sid + 1) ~= sid .. '|' then
  return 0
end
local t = redis.call('HMGET', task, 'status', 'attempt', 'server_id')
if t[1] == 'PROCESSING' and t[2] == ARGV[2] and t[3] == sid then
  return -1
end
local cost, reserved_ms = string.match(held, '|(%d+)|(%d+)$')
cost = tonumber(cost)
if now - tonumber(reserved_ms) < tonumber(ARGV[12]) then
  return -2
end

local hold = ARGV[13] == '1'
if hold then
  redis.call('HSET', leases, lease, sid .. '|' .. cost .. '|' .. ARGV[6]) -- reclaimed later
else
  redis.call('HDEL', leases, lease)
  if redis.call('HINCRBY', pool, sid .. '|used', -cost) < 0 then
    redis.call('HSET', pool, sid .. '|used', 0)
  end
end

local was_probe = pf(pool, sid, 'probe') == '2'
if outcome == 'success' or outcome == 'failure' then
  redis.call('HINCRBY', server, 'processed', 1)
  redis.call('HINCRBY', server, 'resp_total_ms', duration)
  redis.call('HSET', server, 'last_active_ms', now)
  local old = tonumber(pf(pool, sid, 'ewma') or '')
  local ewma = duration
  if old ~= nil then ewma = alpha * duration + (1 - alpha) * old end
  redis.call('HSET', pool, sid .. '|ewma', ewma)
  redis.call('HSET', server, 'ewma_ms', ewma)
end
if outcome == 'success' then
  redis.call('HINCRBY', server, 'successes', 1)
  redis.call('HSET', server, 'fails_in_row', 0)
  if was_probe or redis.call('HGET', server, 'circuit') == 'half_open' then
    redis.call('HSET', server, 'circuit', 'closed')
    redis.call('HDEL', pool, sid .. '|probe')
  end
elseif outcome == 'failure' then
  redis.call('HINCRBY', server, 'failures', 1)
  local in_row = redis.call('HINCRBY', server, 'fails_in_row', 1)
  if was_probe or in_row >= tonumber(ARGV[8]) then
    local until_ms = now + tonumber(ARGV[9])
    redis.call('HSET', server, 'circuit', 'open', 'circuit_until_ms', until_ms)
    redis.call('HSET', pool, sid .. '|sleep', 1)
    redis.call('HDEL', pool, sid .. '|probe')
    redis.call('ZADD', sleeping, until_ms, sid)
  end
elseif outcome == 'busy' then
  local until_ms = now + tonumber(ARGV[10])
  redis.call('HSET', server, 'busy_until_ms', until_ms)
  redis.call('HSET', pool, sid .. '|sleep', 1)
  redis.call('ZADD', sleeping, math.max(until_ms, tonumber(redis.call('ZSCORE', sleeping, sid) or 0)), sid)
  if was_probe then redis.call('HSET', pool, sid .. '|probe', 1) end
elseif was_probe then
  redis.call('HSET', pool, sid .. '|probe', 1)
end
reindex(pool, avail, sid, alg, tonumber(ARGV[11]))
if hold then return 2 end
return 1
