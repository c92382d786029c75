-- lib/pool.lua: shared by the load-balancer scripts (prepended to each when loaded).
-- A pool is the set of servers that share one (capabilities, groups, region) profile.
-- Its hash holds each server's selection fields as '<sid>|<name>':
--   max   slots (maxConcurrent)          used  slots reserved now
--   w     effective weight (>0)          ewma  response-time EWMA in ms (absent: no history)
--   pass  stride-scheduling pass value   rr    round-robin sequence of its last pick
--   ok    1 if online/degraded, not in maintenance or draining
--   deg   1 if degraded                  sleep 1 while the circuit is open or it said busy
--   probe 1 half-open (one probe allowed), 2 probe in flight
--   prio  its priority (0..100): among servers that score the same, the higher first
--   cpu   reported cpu use 0..1 (its GPU utilization when it reports one)
--   mem   reported memory use 0..1 (its GPU memory when it reports one)
--   rep_ms when it reported them (ms); figures older than FRESH_MS count as unknown
-- Its 'avail' zset holds exactly the servers that can take a slot now, scored for the
-- algorithm in use (lower first): selection reads the front of it and trusts the score.
-- Under resource-aware a score built on fresh figures goes stale with time alone, so the
-- pool's 'fresh' zset holds each such server with the ms its figures go stale at;
-- lb_select re-scores the ones due before it reads the front.

-- The algorithm when none was chosen: the seeds' default (app.core.balancing agrees).
local DEFAULT_ALGORITHM = 'weighted-round-robin'
-- Stride-scheduling constant: pass grows by STRIDE / weight per pick.
local STRIDE = 1000000
local FIELDS = {'max', 'used', 'w', 'ewma', 'pass', 'rr', 'ok', 'deg', 'sleep', 'probe', 'prio',
  'cpu', 'mem', 'rep_ms'}
-- Ms reported figures count for (app.core.balancing.REPORT_FRESH_S agrees).
local FRESH_MS = 60000
-- What an unknown cpu or memory figure counts as (app.core.balancing.UNKNOWN_LOAD agrees).
local UNKNOWN_LOAD = 0.5
-- Highest server priority; a server's term below is (MAX_PRIORITY - prio) steps.
local MAX_PRIORITY = 100
-- Relative size of one priority step in a score: far below any difference between two
-- real costs (least-connections' used/max ratios differ by at least 1e-8 with
-- maxConcurrent <= 10000; the term is at most 1e-10 of the cost), far above a double's
-- precision (2e-16).
local PRIORITY_STEP = 1e-12

local function algorithm(key)
  return redis.call('GET', key) or DEFAULT_ALGORITHM
end

-- Every selection field of 'sid' in one HMGET, as numbers (absent -> nil).
local function load(pool, sid)
  local names = {}
  for i, f in ipairs(FIELDS) do names[i] = sid .. '|' .. f end
  local values = redis.call('HMGET', pool, unpack(names))
  local s = {}
  for i, f in ipairs(FIELDS) do
    if values[i] and values[i] ~= '' then s[f] = tonumber(values[i]) end
  end
  s.max, s.used, s.w = s.max or 0, s.used or 0, s.w or 1
  return s
end

local function pf(pool, sid, name)
  return redis.call('HGET', pool, sid .. '|' .. name)
end

-- Whether the server's reported figures are fresh at now_ms.
local function fresh(s, now_ms)
  return s.rep_ms ~= nil and now_ms - s.rep_ms <= FRESH_MS
end

-- resource-aware's score, higher is better (app.core.balancing.resource_score):
-- 0.4 * (1 - cpu) + 0.4 * (1 - memory) + 0.2 / (1 + slots in use), where a figure that
-- is stale or was not reported counts as UNKNOWN_LOAD; halved for a degraded server.
local function resource_score(s, now_ms)
  local cpu, mem = UNKNOWN_LOAD, UNKNOWN_LOAD
  if fresh(s, now_ms) then cpu, mem = s.cpu or UNKNOWN_LOAD, s.mem or UNKNOWN_LOAD end
  local r = 0.4 * (1 - cpu) + 0.4 * (1 - mem) + 0.2 / (1 + s.used)
  if s.deg == 1 then r = r / 2 end
  return r
end

-- The cost of a server under 'alg' (lower is better), before its priority term.
local function cost_of(s, alg, penalty_ms, now_ms)
  local deg = s.deg == 1
  if alg == 'least-connections' then
    if deg then return (s.used + 1) * 2 / math.max(s.max, 1) end
    return s.used / math.max(s.max, 1)
  elseif alg == 'response-time' or alg == 'p2c-ewma' then
    local ewma = s.ewma or penalty_ms
    if deg then ewma = ewma * 2 end
    if alg == 'p2c-ewma' then return ewma * (s.used + 1) end
    return ewma
  elseif alg == 'weighted-round-robin' then
    return s.pass or 0
  elseif alg == 'round-robin' then
    return s.rr or 0
  elseif alg == 'resource-aware' then
    return -resource_score(s, now_ms)
  end
  return 0
end

-- The score a picker compares (lower is better): the cost, plus a priority term so small
-- that it only orders servers whose costs are equal, higher priority first. Being in the
-- score, it also decides which of many equal servers come first in an avail zset.
local function score(s, alg, penalty_ms, now_ms)
  local cost = cost_of(s, alg, penalty_ms, now_ms)
  return cost + (MAX_PRIORITY - (s.prio or 0)) * PRIORITY_STEP * math.max(1, math.abs(cost))
end

-- Whether a server can take a slot of 'cost' now.
local function can_take(s, cost)
  return s.ok == 1 and (s.sleep or 0) == 0 and s.probe ~= 2 and s.used + cost <= s.max
end

-- Put 'sid' in or out of the pool's avail zset, with its score for 'alg' at now_ms
-- (under resource-aware, in the pool's fresh zset while its score rests on fresh figures).
local function reindex(pool, avail, fresh_set, sid, alg, penalty_ms, now_ms)
  local s = load(pool, sid)
  local listed = can_take(s, 1)
  if listed then
    redis.call('ZADD', avail, score(s, alg, penalty_ms, now_ms), sid)
  else
    redis.call('ZREM', avail, sid)
  end
  if alg == 'resource-aware' then
    if listed and fresh(s, now_ms) then
      redis.call('ZADD', fresh_set, s.rep_ms + FRESH_MS, sid)
    else
      redis.call('ZREM', fresh_set, sid)
    end
  end
  return s
end
