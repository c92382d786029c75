-- due_claim.lua: claim the members of a schedule whose time has come. Each is given a
-- new due time (now + lease) instead of being removed, so a second claimer skips it
-- while its job runs, and it comes due again by itself if that job is lost.
--
-- KEYS[1] schedule: schedule zset (member -> due ms)
-- ARGV[1] now_ms: now
-- ARGV[2] lease_ms: how long a claim holds before the member is due again
-- ARGV[3] limit: members claimed at most
--
-- Returns the members claimed, earliest due first.

local schedule = KEYS[1]
local now_ms = tonumber(ARGV[1])
local lease_ms = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])

local due = redis.call('ZRANGEBYSCORE', schedule, '-inf', now_ms, 'LIMIT', 0, limit)
for _, member in ipairs(due) do
  redis.call('ZADD', schedule, now_ms + lease_ms, member)
end
return due
