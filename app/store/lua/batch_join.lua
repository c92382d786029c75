-- batch_join.lua: add a task attempt to the batch gathering for one server, task type
-- and mode. When the batch holds max_size attempts (or the server waits for nothing),
-- it is taken whole for the caller to send. Otherwise the batch's send time (when its
-- oldest attempt has waited max_wait_ms) is kept in the due zset, for beat.
-- Every attempt in a batch already holds its own slot on the server.
--
-- KEYS[1] line: the gathering batch (member '<task_id>:<attempt>' -> ms it joined)
-- KEYS[2] due: batches due (batch id -> ms its oldest attempt has waited long enough)
-- ARGV[1] member: '<task_id>:<attempt>'
-- ARGV[2] batch_id: the batch's id in the due zset
-- ARGV[3] now_ms: now (the join time)
-- ARGV[4] max_size: attempts per call at most
-- ARGV[5] max_wait_ms: how long the oldest attempt may wait for others
--
-- Returns the members taken (oldest first) when the batch goes out now, else {}.

local line = KEYS[1]
local due = KEYS[2]
local member = ARGV[1]
local batch_id = ARGV[2]
local now_ms = tonumber(ARGV[3])
local max_size = tonumber(ARGV[4])
local max_wait_ms = tonumber(ARGV[5])

redis.call('ZADD', line, 'NX', now_ms, member)
local taken = {}
if redis.call('ZCARD', line) >= max_size or max_wait_ms == 0 then
  local popped = redis.call('ZPOPMIN', line, max_size)
  for i = 1, #popped, 2 do taken[#taken + 1] = popped[i] end
end
local oldest = redis.call('ZRANGE', line, 0, 0, 'WITHSCORES')
if oldest[1] then
  redis.call('ZADD', due, tonumber(oldest[2]) + max_wait_ms, batch_id)
else
  redis.call('ZREM', due, batch_id)
end
return taken
