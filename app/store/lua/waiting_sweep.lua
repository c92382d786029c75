-- waiting_sweep.lua: forget profiles that have no line (admitted for a task that then
-- never waited: a server for it appeared, or its submission failed after admission).
-- Each is checked and dropped in one step, so a profile whose line a park has just
-- created stays. (A profile admitted for a task still on its way to its line may go:
-- the task's park adds it again.)
--
-- KEYS[1] profiles: every waiting profile (tf:waiting:profiles)
-- KEYS[2..] lines: the line of each profile (tf:waiting:<p>:line)
-- ARGV[1..] profile_ids: the profiles, in the order of the lines
--
-- Returns how many profiles were forgotten.

local profiles = KEYS[1]

if #KEYS - 1 ~= #ARGV then return redis.error_reply('one profile id per line') end

local dropped = 0
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    dropped = dropped + redis.call('HDEL', profiles, ARGV[i - 1])
  end
end
return dropped
