-- lb_sync.lua: publish one server's selection fields into its pool from its server
-- hash (status, maintenance, capacity, weight, breaker, busy), and put it in or out of
-- the pool's avail zset. A circuit whose open period has passed turns half-open here
-- (one probe allowed); a busy period that has passed ends here.
--
-- KEYS[1]  pool hash        (tf:pool:<p>)
-- KEYS[2]  pool avail zset  (tf:pool:<p>:avail)
-- KEYS[3]  server hash      (tf:server:<sid>)
-- KEYS[4]  sleeping zset    (tf:lb:sleeping)
-- KEYS[5]  the algorithm in use (tf:lb:algorithm)
-- ARGV[1]  server id
-- ARGV[2]  now_ms
-- ARGV[3]  no-history EWMA penalty in ms
--
-- Returns 1 if the server can take a task now, else 0.

local pool, avail, server, sleeping = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local sid, alg, now = ARGV[1], algorithm(KEYS[5]), tonumber(ARGV[2])
local s = redis.call('HMGET', server, 'status', 'maintenance', 'max_concurrent', 'weight',
  'circuit', 'circuit_until_ms', 'busy_until_ms')
local status, maintenance = s[1], s[2]
if not status then
  return 0
end

local ok = (status == 'online' or status == 'degraded') and maintenance ~= '1'
local sleep = 0
if s[5] == 'open' then
  if tonumber(s[6] or '0') <= now then
    redis.call('HSET', server, 'circuit', 'half_open')
    redis.call('HSET', pool, sid .. '|probe', 1)
  else
    sleep = 1
  end
end
if tonumber(s[7] or '0') > now then
  sleep = 1
end
if sleep == 0 then
  local wake = redis.call('ZSCORE', sleeping, sid)
  if wake and tonumber(wake) <= now then redis.call('ZREM', sleeping, sid) end
end

local weight = tonumber(s[4] or '1')
if status == 'degraded' then weight = weight / 2 end
redis.call('HSET', pool, sid .. '|ok', ok and 1 or 0, sid .. '|deg', status == 'degraded' and 1 or 0,
  sid .. '|max', s[3], sid .. '|w', math.max(weight, 0.01), sid .. '|sleep', sleep)
redis.call('HSETNX', pool, sid .. '|used', 0)
if alg == 'weighted-round-robin' and not pf(pool, sid, 'pass') then
  local first = redis.call('ZRANGE', avail, 0, 0, 'WITHSCORES')
  redis.call('HSET', pool, sid .. '|pass', tonumber(first[2] or '0'))
end
local state = reindex(pool, avail, sid, alg, tonumber(ARGV[3]))
return can_take(state, 1) and 1 or 0
