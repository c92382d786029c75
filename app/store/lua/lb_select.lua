-- lb_select.lua: choose a server for a task attempt and reserve its slot, atomically.
-- Candidates come from the given pools only (the caller picked the pools whose
-- capabilities and groups fit the task). A pool's avail zset holds just the servers
-- that can take a slot, scored for the algorithm, so the script reads the first few
-- entries of each pool (random ones for random and p2c-ewma) and trusts their scores:
-- the cost depends on the number of candidate pools, not on the number of servers.
-- Pools in the task's region come first; other pools are the fallback.
-- resource-aware picks the highest 0.4 * (1 - cpu) + 0.4 * (1 - memory) + 0.2 / (1 +
-- slots in use), cpu and memory from the server's last heartbeat (its GPU utilization
-- and GPU memory in their place when it reports them), a figure not reported or more
-- than 60 s old counting as 0.5, halved for a degraded server (lib/pool.lua). Servers
-- whose figures went stale since they were scored (their entries in the pool's fresh
-- zset are due) are re-scored first: each heartbeat adds at most one such entry, so
-- this costs nothing per server per pick.
-- Every check happens before the first write (repairing an index entry aside).
--
-- KEYS[1] rr_sequence: round-robin sequence counter (tf:lb:seq)
-- KEYS[2] algorithm_key: the algorithm in use (tf:lb:algorithm; default
--         weighted-round-robin)
-- KEYS[3] limits_loaded: string set once the concurrency limits were published
--         (tf:limits:loaded); while it is missing nothing is reserved
-- KEYS[4] type_limit: the task type's limit hash (tf:limit:<type>, 'current'; absent:
--         no limit for the type)
-- KEYS[5] type_held: the task type's limit holds (tf:limit-held:<type>), lease -> ms
-- KEYS[6] all_limit: the limit of all tasks (tf:limit:*)
-- KEYS[7] all_held: the holds of the limit of all tasks (tf:limit-held:*)
-- KEYS[8..] pools: four keys per candidate pool, pool p (1-based) at KEYS[4p+4],
--         KEYS[4p+5], KEYS[4p+6], KEYS[4p+7]: pool hash (tf:pool:<p>), pool avail zset
--         (tf:pool:<p>:avail), pool leases hash (tf:pool:<p>:leases)
--         '<task>:<attempt>' -> '<sid>|<cost>|<ms>', pool fresh zset
--         (tf:pool:<p>:fresh) sid -> ms its reported figures go stale
-- ARGV[1] lease: lease field '<task_id>:<attempt>'
-- ARGV[2] cost: slot cost (integer >= 1)
-- ARGV[3] seed: random seed (integer)
-- ARGV[4] in_region: how many of the pools (the first ones) are in the task's region
-- ARGV[5] avoid: server id to avoid if any other fits ('' for none)
-- ARGV[6] penalty_ms: EWMA in ms assumed for a server with no history (the no-history
--         penalty)
-- ARGV[7] per_pool: entries read per pool
-- ARGV[8] now_ms: now in ms (stamped on the lease, so leases left by a crashed worker
--         can be told from fresh ones; resource-aware scores only figures fresh now)
--
-- Returns {server_id, pool_index (1-based)} or false when no server can take it; -1
-- when the limits are not loaded, -2 when the type's limit is full, -3 when the limit
-- of all tasks is full. A limit is full when the attempts it holds, this one counted,
-- would exceed its current value; the reservation adds the lease to the holds of every
-- limit that applies, in this same script, so no number of workers can exceed one. A
-- lease this task attempt already holds is returned as is: a duplicate dispatch job
-- reserves nothing twice and counts nothing twice.

local rr_sequence = KEYS[1]
local algorithm_key = KEYS[2]
local limits_loaded = KEYS[3]
local type_limit = KEYS[4]
local type_held = KEYS[5]
local all_limit = KEYS[6]
local all_held = KEYS[7]
local lease = ARGV[1]
local cost = tonumber(ARGV[2])
local seed = tonumber(ARGV[3])
local in_region = tonumber(ARGV[4])
local avoid = ARGV[5]
local penalty_ms = tonumber(ARGV[6])
local per_pool = tonumber(ARGV[7])
local now_ms = tonumber(ARGV[8])

local alg = algorithm(algorithm_key)
math.randomseed(seed)
local FIXED_KEYS = 7
local npools = (#KEYS - FIXED_KEYS) / 4
local sampled = alg == 'random' or alg == 'p2c-ewma'

-- The keys of candidate pool p.
local function pool_keys(p)
  local base = FIXED_KEYS + 4 * (p - 1)
  return KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4]
end

for p = 1, npools do
  local _, _, leases = pool_keys(p)
  local held = redis.call('HGET', leases, lease)
  if held then
    return {string.match(held, '^(.*)|%d+|%d+$'), p}
  end
end

if redis.call('EXISTS', limits_loaded) == 0 then
  return -1
end
-- The holds this reservation joins: one per limit that applies and has room.
local holds = {}
local function full(limit_key, held_key)
  local current = redis.call('HGET', limit_key, 'current')
  if not current then return false end
  local running = redis.call('HLEN', held_key)
  if redis.call('HEXISTS', held_key, lease) == 0 then running = running + 1 end
  if running > tonumber(current) then return true end
  holds[#holds + 1] = held_key
  return false
end
if full(type_limit, type_held) then return -2 end
if full(all_limit, all_held) then return -3 end

if alg == 'resource-aware' then
  for p = 1, npools do
    local pool, avail, _, fresh_set = pool_keys(p)
    for _, sid in ipairs(redis.call('ZRANGEBYSCORE', fresh_set, '-inf', '(' .. now_ms)) do
      reindex(pool, avail, fresh_set, sid, alg, penalty_ms, now_ms)
    end
  end
end

-- Candidates of pools first..last: {sid, p, s (score), w, state}. Membership of an
-- avail zset already means "can take one slot" (every script that changes a server's
-- load or status re-indexes it), so for a one-slot task only the chosen server is read
-- in full, and checked again before the reservation. The avoided server is skipped
-- when another fits.
local function candidates(first, last)
  local found, avoided = {}, nil
  for p = first, last do
    local pool, avail = pool_keys(p)
    local entries
    if sampled then
      entries = redis.call('ZRANDMEMBER', avail, per_pool, 'WITHSCORES')
    else
      entries = redis.call('ZRANGE', avail, 0, per_pool - 1, 'WITHSCORES')
    end
    local pool_best = nil
    for i = 1, #entries, 2 do
      local sid, s = entries[i], tonumber(entries[i + 1])
      -- In score order, once this pool has a candidate only ties with it matter.
      if not sampled and pool_best ~= nil and s > pool_best then break end
      local c = {sid = sid, p = p, s = s, w = 1}
      local fits = true
      if cost > 1 then
        c.state = load(pool, sid)
        c.w = c.state.w
        fits = can_take(c.state, cost)
      elseif alg == 'random' or alg == 'weighted-round-robin' then
        c.w = tonumber(pf(pool, sid, 'w') or '1')
      end
      if fits then
        if sid == avoid then
          avoided = c
        else
          found[#found + 1] = c
          pool_best = pool_best or s
        end
      end
    end
  end
  if #found == 0 and avoided then found[1] = avoided end
  return found
end

-- The best-scored candidate. Scores carry the servers' priorities (lib/pool.lua), so a
-- tie here is between servers of the same priority: it is broken at random.
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
    c.floor = virtual_time - 2 * STRIDE / c.w
    c.s = math.max(c.s, c.floor)
  end
end

local function choose(found)
  if #found == 0 then return nil end
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
  if alg == 'weighted-round-robin' then floor_lagging(found) end
  return lowest(found) -- round-robin, least-connections, response-time, resource-aware
end

local function select_once()
  local pick = choose(candidates(1, in_region))
  if pick == nil and in_region < npools then
    pick = choose(candidates(in_region + 1, npools))
  end
  return pick
end

-- The chosen server is read in full and must fit; one that does not (an index out of
-- step) is taken out of its avail zset and the choice is made again.
local pick
for _ = 1, 3 do
  pick = select_once()
  if pick == nil then return false end
  local pool, avail = pool_keys(pick.p)
  pick.state = pick.state or load(pool, pick.sid)
  if can_take(pick.state, cost) then break end
  redis.call('ZREM', avail, pick.sid)
  pick = nil
end
if pick == nil then
  return false
end

local pool, avail, leases, fresh_set = pool_keys(pick.p)
local sid = pick.sid
redis.call('HSET', leases, lease, sid .. '|' .. cost .. '|' .. now_ms)
for _, held_key in ipairs(holds) do
  redis.call('HSET', held_key, lease, now_ms)
end
redis.call('HINCRBY', pool, sid .. '|used', cost)
if pick.state.probe == 1 then
  redis.call('HSET', pool, sid .. '|probe', 2)
end
if alg == 'round-robin' then
  redis.call('HSET', pool, sid .. '|rr', redis.call('INCR', rr_sequence))
elseif alg == 'weighted-round-robin' then
  -- From its pass (the score also holds the priority term), raised to the floor.
  local pass = math.max(pick.state.pass or 0, pick.floor or 0)
  redis.call('HSET', pool, sid .. '|pass', pass + STRIDE / pick.w)
end
reindex(pool, avail, fresh_set, sid, alg, penalty_ms, now_ms)
return {sid, pick.p}
