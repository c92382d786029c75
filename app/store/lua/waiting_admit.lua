-- waiting_admit.lua: admit the requirement profiles of tasks about to be stored, under
-- the cap on distinct waiting profiles: all of them or none. A profile already waiting
-- is always admitted; new ones are added to the profiles hash at once (so concurrent
-- submissions count them), which the tasks' parking then finds there.
--
-- KEYS[1] profiles: every waiting profile (tf:waiting:profiles), id -> text
-- ARGV[1] max_profiles: how many distinct profiles may wait at most
-- ARGV[2..] entries: pairs (profile id, profile text)
--
-- Returns 1 when admitted (new profiles added), 0 when the new ones would pass the cap
-- (nothing written).

local profiles = KEYS[1]
local max_profiles = tonumber(ARGV[1])

if (#ARGV - 1) % 2 ~= 0 then return redis.error_reply('entries come in pairs') end

local new = {}
for i = 2, #ARGV, 2 do
  if redis.call('HEXISTS', profiles, ARGV[i]) == 0 then
    new[#new + 1] = ARGV[i]
    new[#new + 1] = ARGV[i + 1]
  end
end
if #new == 0 then return 1 end
if redis.call('HLEN', profiles) + #new / 2 > max_profiles then return 0 end
for i = 1, #new, 2 do
  redis.call('HSETNX', profiles, new[i], new[i + 1])
end
return 1
