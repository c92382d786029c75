-- lb_sync.lua: publish one server's selection fields into its pool from its server
-- hash (status, maintenance, capacity, weight, priority, breaker, busy, reported load),
-- and put it in or out of the pool's avail zset. A circuit whose open period has passed
-- turns half-open here (one probe allowed); a busy period that has passed ends here.
-- The reported load published is cpu and memory, or the GPU's utilization and memory
-- in their place when the server reports those, with the time they were reported.
--
-- KEYS[1] pool: pool hash (tf:pool:<p>)
-- KEYS[2] avail: pool avail zset (tf:pool:<p>:avail)
-- KEYS[3] server: server hash (tf:server:<sid>)
-- KEYS[4] sleeping: sleeping zset (tf:lb:sleeping)
-- KEYS[5] algorithm_key: the algorithm in use (tf:lb:algorithm)
-- KEYS[6] fresh_set: pool fresh zset (tf:pool:<p>:fresh), sid -> ms its figures go stale
-- ARGV[1] server_id: server id
-- ARGV[2] now_ms: now in ms
-- ARGV[3] penalty_ms: no-history EWMA penalty in ms
--
-- Returns 1 if the server can take a task now, else 0.

local pool = KEYS[1]
local avail = KEYS[2]
local server = KEYS[3]
local sleeping = KEYS[4]
local algorithm_key = KEYS[5]
local fresh_set = KEYS[6]
local server_id = ARGV[1]
local now_ms = tonumber(ARGV[2])
local penalty_ms = tonumber(ARGV[3])

local alg = algorithm(algorithm_key)
local s = redis.call('HMGET', server, 'status', 'maintenance', 'max_concurrent', 'weight',
  'circuit', 'circuit_until_ms', 'busy_until_ms', 'priority')
local status, maintenance = s[1], s[2]
if not status then
  return 0
end

local ok = (status == 'online' or status == 'degraded') and maintenance ~= '1'
local sleep = 0
if s[5] == 'open' then
  if tonumber(s[6] or '0') <= now_ms then
    redis.call('HSET', server, 'circuit', 'half_open')
    redis.call('HSET', pool, server_id .. '|probe', 1)
  else
    sleep = 1
  end
end
if tonumber(s[7] or '0') > now_ms then
  sleep = 1
end
if sleep == 0 then
  local wake = redis.call('ZSCORE', sleeping, server_id)
  if wake and tonumber(wake) <= now_ms then redis.call('ZREM', sleeping, server_id) end
end

local weight = tonumber(s[4] or '1')
if status == 'degraded' then weight = weight / 2 end
redis.call('HSET', pool, server_id .. '|ok', ok and 1 or 0,
  server_id .. '|deg', status == 'degraded' and 1 or 0, server_id .. '|max', s[3],
  server_id .. '|w', math.max(weight, 0.01), server_id .. '|sleep', sleep,
  server_id .. '|prio', tonumber(s[8] or '0'))
redis.call('HSETNX', pool, server_id .. '|used', 0)

local r = redis.call('HMGET', server, 'reported_cpu', 'reported_memory', 'reported_gpu_utilization',
  'reported_gpu_memory', 'reported_at_ms')
local reported = {
  cpu = tonumber(r[3] or '') or tonumber(r[1] or ''),
  mem = tonumber(r[4] or '') or tonumber(r[2] or ''),
  rep_ms = tonumber(r[5] or ''),
}
for _, name in ipairs({'cpu', 'mem', 'rep_ms'}) do
  if reported[name] then
    redis.call('HSET', pool, server_id .. '|' .. name, reported[name])
  else
    redis.call('HDEL', pool, server_id .. '|' .. name)
  end
end
if alg == 'weighted-round-robin' and not pf(pool, server_id, 'pass') then
  -- The front's pass (not its score, which holds the front's priority term).
  local first = redis.call('ZRANGE', avail, 0, 0)[1]
  local pass = first and tonumber(pf(pool, first, 'pass') or '0') or 0
  redis.call('HSET', pool, server_id .. '|pass', pass)
end
local state = reindex(pool, avail, fresh_set, server_id, alg, penalty_ms, now_ms)
return can_take(state, 1) and 1 or 0
