-- lib/pool.lua: shared by the load-balancer scripts (prepended to each when loaded).
-- A pool is the set of servers that share one (capabilities, groups, region) profile.
-- Its hash holds each server's selection fields as '<sid>|<name>':
--   max   slots (maxConcurrent)          used  slots reserved now
--   w     effective weight (>0)          ewma  response-time EWMA in ms ('' = no history)
--   pass  stride-scheduling pass value   ok    1 if online/degraded, not in maintenance
--   deg   1 if degraded                  sleep 1 while the circuit is open or it said busy
--   probe 1 half-open (one probe allowed), 2 probe in flight
-- Its 'avail' zset holds the servers that can take a slot now, scored per algorithm
-- (lower first), so selection never scans the whole fleet.

-- The algorithm when none was chosen: the seeds' default (app.core.balancing agrees).
local DEFAULT_ALGORITHM = 'weighted-round-robin'

local function algorithm(key)
  return redis.call('GET', key) or DEFAULT_ALGORITHM
end

-- Stride-scheduling constant: pass grows by STRIDE / weight per pick.
local STRIDE = 1000000

local function pf(pool, sid, name)
  return redis.call('HGET', pool, sid .. '|' .. name)
end

local function pnum(pool, sid, name, default)
  local v = redis.call('HGET', pool, sid .. '|' .. name)
  if v == false or v == '' then return default end
  return tonumber(v)
end

-- The cost a picker compares for 'sid' under 'alg' (lower is better).
local function score(pool, sid, alg, seq_key, penalty_ms)
  local used, max = pnum(pool, sid, 'used', 0), pnum(pool, sid, 'max', 1)
  local deg = pnum(pool, sid, 'deg', 0) == 1
  if alg == 'least-connections' then
    local s = used / max
    if deg then s = (used + 1) * 2 / max end
    return s
  elseif alg == 'response-time' or alg == 'p2c-ewma' then
    local ewma = pnum(pool, sid, 'ewma', penalty_ms)
    if deg then ewma = ewma * 2 end
    if alg == 'p2c-ewma' then return ewma * (used + 1) end
    return ewma
  elseif alg == 'weighted-round-robin' then
    return pnum(pool, sid, 'pass', 0)
  elseif alg == 'round-robin' then
    return pnum(pool, sid, 'rr', 0)
  end
  return 0
end

-- Whether 'sid' can take a slot of 'cost' now.
local function can_take(pool, sid, cost)
  return pnum(pool, sid, 'ok', 0) == 1 and pnum(pool, sid, 'sleep', 0) == 0
    and pnum(pool, sid, 'probe', 0) ~= 2
    and pnum(pool, sid, 'used', 0) + cost <= pnum(pool, sid, 'max', 0)
end

-- Put 'sid' in or out of the pool's avail zset, with its score for 'alg'.
local function reindex(pool, avail, sid, alg, seq_key, penalty_ms)
  if can_take(pool, sid, 1) then
    redis.call('ZADD', avail, score(pool, sid, alg, seq_key, penalty_ms), sid)
  else
    redis.call('ZREM', avail, sid)
  end
end
