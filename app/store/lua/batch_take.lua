-- batch_take.lua: take up to max_size of a gathering batch's oldest attempts to send
-- them (its wait is over), and keep the due time of what stays in step.
--
-- KEYS[1] line: the gathering batch (member '<task_id>:<attempt>' -> ms it joined)
-- KEYS[2] due: batches due (batch id -> ms its oldest attempt has waited long enough)
-- ARGV[1] batch_id: the batch's id in the due zset
-- ARGV[2] max_size: attempts per call at most
-- ARGV[3] max_wait_ms: how long the oldest attempt may wait for others
--
-- Returns the members taken, oldest first ({} when the batch is empty).

local line = KEYS[1]
local due = KEYS[2]
local batch_id = ARGV[1]
local max_size = tonumber(ARGV[2])
local max_wait_ms = tonumber(ARGV[3])

local taken = {}
local popped = redis.call('ZPOPMIN', line, max_size)
for i = 1, #popped, 2 do taken[#taken + 1] = popped[i] end
local oldest = redis.call('ZRANGE', line, 0, 0, 'WITHSCORES')
if oldest[1] then
  redis.call('ZADD', due, tonumber(oldest[2]) + max_wait_ms, batch_id)
else
  redis.call('ZREM', due, batch_id)
end
return taken
