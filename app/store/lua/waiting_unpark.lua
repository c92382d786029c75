-- waiting_unpark.lua: take tasks that left PENDING some other way (cancelled, timed
-- out) out of their profile's line; a client with nothing left there leaves the
-- profile's clients, and a profile whose line is empty leaves the profiles hash and
-- the sets of the pools that can serve it.
--
-- KEYS[1] profiles: every waiting profile (tf:waiting:profiles)
-- KEYS[2] line: the profile's line (tf:waiting:<p>:line)
-- KEYS[3] clients: the profile's clients (tf:waiting:<p>:clients)
-- KEYS[4] count_key: entries in every line (tf:waiting:count)
-- KEYS[5..] indexes: the waiting-profiles sets of the profile's candidate pools
-- ARGV[1] profile_id: the profile's id
-- ARGV[2] client: the tasks' owner as parked ('*' when fair sharing is off)
-- ARGV[3..] members: the entries to remove (each task's possible entries)
--
-- Returns how many entries were removed.

local profiles = KEYS[1]
local line = KEYS[2]
local clients = KEYS[3]
local count_key = KEYS[4]
local profile_id = ARGV[1]
local client = ARGV[2]

if #ARGV < 3 then return 0 end

local removed = redis.call('ZREM', line, unpack(ARGV, 3))
if removed > 0 then redis.call('INCRBY', count_key, -removed) end
local prefix = #client .. ':' .. client
local low, high = '[' .. prefix, string.char(40) .. prefix .. '\255'  -- 40: '(', exclusive
if not redis.call('ZRANGEBYLEX', line, low, high, 'LIMIT', 0, 1)[1] then
  redis.call('ZREM', clients, client)
end
if redis.call('EXISTS', line) == 0 then
  redis.call('HDEL', profiles, profile_id)
  for i = 5, #KEYS do redis.call('SREM', KEYS[i], profile_id) end
end
return removed
