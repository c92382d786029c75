-- client_settle.lua: a submission client_admit.lua admitted has ended: its tasks are
-- stored (they are unfinished tasks the database counts from now on) or not.
--
-- KEYS[1] usage: the client's hash (tf:client:<sub>)
-- KEYS[2] admissions: zset '<admission id>|<count>' -> ms admitted, of unsettled ones
-- ARGV[1] admission: '<admission id>|<count>', as admitted
-- ARGV[2] count: tasks of the submission
-- ARGV[3] stored: 1 if its tasks were stored, 0 if not
--
-- Returns 1 if the admission was still unsettled, 0 if a recount had dropped it (older
-- than a submission can take).

local usage = KEYS[1]
local admissions = KEYS[2]
local admission = ARGV[1]
local count = tonumber(ARGV[2])
local stored = tonumber(ARGV[3])

local found = redis.call('ZSCORE', admissions, admission)
if stored == 1 and redis.call('EXISTS', usage) == 1 then
  -- Counted even if dropped: it may have been stored after the recount's count.
  redis.call('HINCRBY', usage, 'settled', count)
end
if not found then
  return 0
end
redis.call('ZREM', admissions, admission)
redis.call('HINCRBY', usage, 'inflight', -count)
return 1
