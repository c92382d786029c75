-- waiting_pop.lua: take the best waiting tasks a pool's servers can serve, sharing them
-- fairly between clients.
--
-- The caller passes the profiles of the pool's waiting-profiles set (only those: a
-- profile no server of the pool can serve costs nothing here). Each take goes to the
-- client with the lowest pass among those waiting in these profiles (ties: the better
-- task), and within that client to its best task by priority then age; the client's
-- pass then grows by 1 / its weight (with ``advance`` 0 passes stay put and the order
-- is the tasks' alone); its score in every clients zset given is updated with it. Its
-- score in a profile not given may stay lower than its pass (it was served by another
-- pool since): such a head is corrected when met, at most ``max_fixes`` times per
-- profile and take. A profile whose line empties leaves
-- the profiles hash and this pool's set (another pool's set drops it at its next pop).
--
-- KEYS[1] passes: every client's pass (tf:fair:passes)
-- KEYS[2] weights: client -> weight (tf:clients:weights; absent: 1)
-- KEYS[3] profiles: every waiting profile (tf:waiting:profiles)
-- KEYS[4] count_key: entries in every line (tf:waiting:count)
-- KEYS[5] index: the pool's waiting-profiles set (tf:pool:<p>:waiting)
-- KEYS[6] clock: the pool's clock (tf:pool:<p>:vtime)
-- KEYS[7..] lines: per profile, its line (tf:waiting:<p>:line) and its clients zset
--           (tf:waiting:<p>:clients)
-- ARGV[1] count: how many tasks to take at most
-- ARGV[2] max_fixes: stale heads corrected per profile and take, at most
-- ARGV[3] advance: 1 to advance the served client's pass (fair sharing), 0 not to
-- ARGV[4..] profile_ids: the id of each profile, in the order of the lines
--
-- Returns the task ids taken, in the order taken (each removed from its line).

local passes = KEYS[1]
local weights = KEYS[2]
local profiles = KEYS[3]
local count_key = KEYS[4]
local index = KEYS[5]
local clock = KEYS[6]
local count = tonumber(ARGV[1])
local max_fixes = tonumber(ARGV[2])
local advance = ARGV[3]

local n = (#KEYS - 6) / 2
if n ~= math.floor(n) then return redis.error_reply('lines come in pairs') end
if #ARGV - 3 ~= n then return redis.error_reply('one profile id per pair of lines') end

-- The 16-digit score sits right after a member's client prefix; the task id after it.
local SCORE_DIGITS = 16

local function prefix_of(client)
  return #client .. ':' .. client
end

-- A client's range in a line: from its prefix (inclusive) to its prefix then byte 255
-- (exclusive; no score digit or task id reaches it).
local function first_of(line, client)
  local prefix = prefix_of(client)
  local low, high = '[' .. prefix, string.char(40) .. prefix .. '\255'
  return redis.call('ZRANGEBYLEX', line, low, high, 'LIMIT', 0, 1)[1]
end

-- Profile p's head: {client, pass, member}, or nil when no client waits there.
local function head(p)
  local line, clients = KEYS[5 + 2 * p], KEYS[6 + 2 * p]
  local fixes = 0
  while true do
    local top = redis.call('ZRANGE', clients, 0, 0, 'WITHSCORES')
    if not top[1] then return nil end
    local client, stored = top[1], tonumber(top[2])
    local pass = tonumber(redis.call('HGET', passes, client)) or 0
    local member = first_of(line, client)
    if member == nil then
      redis.call('ZREM', clients, client)  -- its tasks left some other way
    elseif pass > stored and fixes < max_fixes then
      redis.call('ZADD', clients, pass, client)
      fixes = fixes + 1
    else
      return {client, math.max(pass, stored), member}
    end
  end
end

local function before(a, b)
  if a[2] ~= b[2] then return a[2] < b[2] end
  local sa = string.sub(a[3], #prefix_of(a[1]) + 1, #prefix_of(a[1]) + SCORE_DIGITS)
  local sb = string.sub(b[3], #prefix_of(b[1]) + 1, #prefix_of(b[1]) + SCORE_DIGITS)
  return sa < sb
end

local heads = {}
for p = 1, n do heads[p] = head(p) or false end

local taken = {}
while #taken < count do
  local best = nil
  for p = 1, n do
    if heads[p] and (best == nil or before(heads[p], heads[best])) then best = p end
  end
  if best == nil then break end
  local client, pass, member = heads[best][1], heads[best][2], heads[best][3]
  local line, clients = KEYS[5 + 2 * best], KEYS[6 + 2 * best]
  redis.call('ZREM', line, member)
  redis.call('INCRBY', count_key, -1)
  taken[#taken + 1] = string.sub(member, #prefix_of(client) + SCORE_DIGITS + 1)

  local next_pass = pass
  if advance == '1' then
    local weight = tonumber(redis.call('HGET', weights, client)) or 1
    if weight <= 0 then weight = 1 end
    next_pass = pass + 1 / weight
    redis.call('HSET', passes, client, string.format('%.17g', next_pass))
  end
  local now = tonumber(redis.call('GET', clock))
  if now == nil or pass > now then redis.call('SET', clock, string.format('%.17g', pass)) end

  if first_of(line, client) then
    redis.call('ZADD', clients, next_pass, client)
  else
    redis.call('ZREM', clients, client)
  end
  if next_pass ~= pass then  -- its score in the other lines given here, if it waits there
    for p = 1, n do
      if p ~= best then redis.call('ZADD', KEYS[6 + 2 * p], 'XX', next_pass, client) end
    end
  end
  -- Heads that showed this client carry its old pass: look again.
  for p = 1, n do
    if p == best or (heads[p] and heads[p][1] == client) then heads[p] = head(p) or false end
  end
end

-- Profiles whose line is empty leave this pool's set (and the profiles hash).
for p = 1, n do
  if not heads[p] and redis.call('EXISTS', KEYS[5 + 2 * p]) == 0 then
    redis.call('SREM', index, ARGV[3 + p])
    redis.call('HDEL', profiles, ARGV[3 + p])
  end
end
return taken
