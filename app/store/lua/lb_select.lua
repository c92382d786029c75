-- lb_select.lua: choose a server for a task attempt and reserve its slot, atomically.
-- Candidates come from the given pools only (the caller picked the pools whose
-- capabilities and groups fit the task), and inside a pool only from its 'avail' zset:
-- at most ARGV[8] entries per pool are looked at, so the cost does not grow with the
-- fleet. Pools in the task's region come first; other pools are the fallback.
-- Every check happens before the first write.
--
-- KEYS[1]          round-robin sequence counter (tf:lb:seq)
-- KEYS[2]          the algorithm in use (tf:lb:algorithm; default weighted-round-robin)
-- KEYS[3i]         pool hash   (tf:pool:<p>)
-- KEYS[3i+1]       pool avail  (tf:pool:<p>:avail)
-- KEYS[3i+2]       pool leases (tf:pool:<p>:leases)   '<task>:<attempt>' -> '<sid>|<cost>'
-- ARGV[1]  lease field '<task_id>:<attempt>'
-- ARGV[2]  slot cost (integer >= 1)
-- ARGV[3]  (unused)
-- ARGV[4]  random seed (integer)
-- ARGV[5]  how many of the pools (the first ones) are in the task's region
-- ARGV[6]  server id to avoid if any other fits ('' for none)
-- ARGV[7]  EWMA in ms assumed for a server with no history (the no-history penalty)
-- ARGV[8]  entries looked at per pool
--
-- Returns {server_id, pool_index (1-based)} or false when no server can take it.

local lease, cost = ARGV[1], tonumber(ARGV[2])
local alg = algorithm(KEYS[2])
math.randomseed(tonumber(ARGV[4]))
local in_region, avoid = tonumber(ARGV[5]), ARGV[6]
local penalty, scan = tonumber(ARGV[7]), tonumber(ARGV[8])
local npools = (#KEYS - 2) / 3

local function eligible_in(first, last)
  local found = {}
  for p = first, last do
    local pool, avail = KEYS[3 * p], KEYS[3 * p + 1]
    local members
    if alg == 'random' or alg == 'p2c-ewma' then
      members = redis.call('ZRANDMEMBER', avail, scan)
    else
      members = redis.call('ZRANGE', avail, 0, scan - 1)
    end
    for _, sid in ipairs(members) do
      if can_take(pool, sid, cost) then
        found[#found + 1] = {sid = sid, p = p, s = score(pool, sid, alg, KEYS[1], penalty),
                             w = pnum(pool, sid, 'w', 1)}
      end
    end
  end
  return found
end

local function without_avoided(found)
  if avoid == '' then return found end
  local kept = {}
  for _, c in ipairs(found) do
    if c.sid ~= avoid then kept[#kept + 1] = c end
  end
  if #kept == 0 then return found end
  return kept
end

local function lowest(found)
  local best, ties = nil, {}
  for _, c in ipairs(found) do
    if best == nil or c.s < best then best, ties = c.s, {c}
    elseif c.s == best then ties[#ties + 1] = c end
  end
  return ties[math.random(#ties)]
end

local function weighted_random(found)
  local total = 0
  for _, c in ipairs(found) do total = total + c.w end
  local r = math.random() * total
  for _, c in ipairs(found) do
    r = r - c.w
    if r <= 0 then return c end
  end
  return found[#found]
end

-- Stride passes of servers that were out of the candidate set for a while (other
-- tasks' filters) lag behind; without a floor such a server would take every pick
-- until it caught up. Active servers' passes never fall below the leader's pass minus
-- the leader's stride (the virtual time); the floor keeps a lagging one within two of
-- its own strides of that, so steady-state picks are untouched.
local function floor_lagging(found)
  local top = found[1]
  for _, c in ipairs(found) do
    if c.s > top.s then top = c end
  end
  local virtual_time = top.s - STRIDE / top.w
  for _, c in ipairs(found) do
    c.s = math.max(c.s, virtual_time - 2 * STRIDE / c.w)
  end
end

local function choose(found)
  if #found == 0 then return nil end
  found = without_avoided(found)
  if alg == 'weighted-round-robin' then floor_lagging(found) end
  if alg == 'random' then return weighted_random(found) end
  if alg == 'p2c-ewma' then
    if #found == 1 then return found[1] end
    local i = math.random(#found)
    local j = math.random(#found - 1)
    if j >= i then j = j + 1 end
    local a, b = found[i], found[j]
    if b.s < a.s or (b.s == a.s and math.random() < 0.5) then return b end
    return a
  end
  return lowest(found)
end

local pick = choose(eligible_in(1, in_region))
if pick == nil and in_region < npools then
  pick = choose(eligible_in(in_region + 1, npools))
end
if pick == nil then
  return false
end

local pool, avail, leases = KEYS[3 * pick.p], KEYS[3 * pick.p + 1], KEYS[3 * pick.p + 2]
local sid = pick.sid
redis.call('HSET', leases, lease, sid .. '|' .. cost)
redis.call('HINCRBY', pool, sid .. '|used', cost)
if pnum(pool, sid, 'probe', 0) == 1 then
  redis.call('HSET', pool, sid .. '|probe', 2)
end
if alg == 'round-robin' then
  redis.call('HSET', pool, sid .. '|rr', redis.call('INCR', KEYS[1]))
elseif alg == 'weighted-round-robin' then
  redis.call('HSET', pool, sid .. '|pass', pick.s + STRIDE / pick.w)
end
reindex(pool, avail, sid, alg, KEYS[1], penalty)
return {sid, pick.p}
