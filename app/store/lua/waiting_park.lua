-- waiting_park.lua: put PENDING tasks of one client and one requirement profile in the
-- profile's waiting line, and make the profile findable by the pools that can serve it.
--
-- A profile's line holds every client's tasks, each client's as one lexical range
-- ('<len>:<client>' then a 16-digit priority/age score then the task id); the profile's
-- clients zset holds the clients with a task there, scored by their pass (virtual time).
-- A client that starts waiting in a profile starts at a pass no lower than the lowest
-- clock of the pools that can serve it: time spent not waiting earns no burst.
--
-- KEYS[1] profiles: every waiting profile (tf:waiting:profiles), id -> text
-- KEYS[2] line: the profile's line (tf:waiting:<p>:line)
-- KEYS[3] clients: the profile's clients (tf:waiting:<p>:clients), client -> pass
-- KEYS[4] passes: every client's pass (tf:fair:passes)
-- KEYS[5] count_key: entries in every line (tf:waiting:count)
-- KEYS[6..] pools: per candidate pool, its waiting-profiles set (tf:pool:<p>:waiting)
--           and its clock (tf:pool:<p>:vtime)
-- ARGV[1] profile_id: the profile's id
-- ARGV[2] profile_text: '<capabilities csv>|<group>'
-- ARGV[3] client: the tasks' owner ('*' for all when fair sharing is off)
-- ARGV[4..] members: pairs (member, other member): the entry to add, and the entry of
--           the same task with its other score (parked normally or at the front),
--           removed so a task is in its line once
--
-- Returns 1 if the profile was not waiting before, else 0.

local profiles = KEYS[1]
local line = KEYS[2]
local clients = KEYS[3]
local passes = KEYS[4]
local count_key = KEYS[5]
local profile_id = ARGV[1]
local profile_text = ARGV[2]
local client = ARGV[3]

if client == '' then return redis.error_reply('client must not be empty') end
if (#ARGV - 3) % 2 ~= 0 then return redis.error_reply('members come in pairs') end
if (#KEYS - 5) % 2 ~= 0 then return redis.error_reply('pools come in pairs') end

local new_profile = redis.call('HSETNX', profiles, profile_id, profile_text)

if not redis.call('ZSCORE', clients, client) then
  local pass = tonumber(redis.call('HGET', passes, client)) or 0
  local floor = nil
  for i = 6, #KEYS, 2 do
    local clock = tonumber(redis.call('GET', KEYS[i + 1]))
    if clock and (floor == nil or clock < floor) then floor = clock end
  end
  if floor and floor > pass then
    pass = floor
    redis.call('HSET', passes, client, string.format('%.17g', pass))
  end
  redis.call('ZADD', clients, pass, client)
end

-- In chunks (unpack has a limit): first the other entries out, then the entries in.
local CHUNK = 1000
local added = 0
local others, entries = {}, {}
for i = 4, #ARGV, 2 do
  others[#others + 1] = ARGV[i + 1]
  entries[#entries + 1] = 0
  entries[#entries + 1] = ARGV[i]
end
for i = 1, #others, CHUNK do
  added = added - redis.call('ZREM', line, unpack(others, i, math.min(i + CHUNK - 1, #others)))
end
for i = 1, #entries, 2 * CHUNK do
  added = added + redis.call('ZADD', line, unpack(entries, i, math.min(i + 2 * CHUNK - 1, #entries)))
end
if added ~= 0 then redis.call('INCRBY', count_key, added) end

for i = 6, #KEYS, 2 do
  redis.call('SADD', KEYS[i], profile_id)
end
return new_profile
