-- task_transition.lua: compare-and-set one task's state.
-- Moves the task to ARGV[2] only if its status is one of ARGV[1] and, when ARGV[3] is
-- not empty, its attempt equals ARGV[3]. Bumps the version, stamps updated_ms, sets the
-- given fields, keeps the deadline index in step, and expires finished tasks after
-- ARGV[5] ms. Everything is checked before the first write.
-- Deadlines: entering PENDING or PROCESSING starts one of timeout_ms (a task waits for
-- a server at most that long, and an attempt runs at most that long); a progress
-- update keeps it; any other state has none.
--
-- KEYS[1]  task hash            (tf:task:<id>)
-- KEYS[2]  deadlines zset       (tf:deadlines)   task_id -> deadline_ms
-- ARGV[1]  allowed source statuses, comma-separated
-- ARGV[2]  target status
-- ARGV[3]  expected attempt, or '' for any
-- ARGV[4]  now_ms
-- ARGV[5]  ttl_ms applied when ARGV[6] is '1' (the target is final), else ignored
-- ARGV[6]  '1' if the target status is final, else '0'
-- ARGV[7..] field, value pairs to set; an empty value deletes the field
--
-- Returns {1, <flat HGETALL after the write>} on success,
--         {0, status, attempt} when the task is in another state or attempt,
--         {-1} when the task has no hot state.

local task_key, deadlines = KEYS[1], KEYS[2]
local target, expected_attempt = ARGV[2], ARGV[3]
local now_ms = tonumber(ARGV[4])

local current = redis.call('HMGET', task_key, 'status', 'attempt', 'version', 'id', 'timeout_ms')
local status, attempt, version, task_id = current[1], current[2], current[3], current[4]
if not status then
  return {-1}
end

local allowed = false
for source in string.gmatch(ARGV[1], '([^,]+)') do
  if source == status then allowed = true end
end
if not allowed or (expected_attempt ~= '' and expected_attempt ~= attempt) then
  return {0, status, attempt}
end

redis.call('HSET', task_key, 'status', target, 'version', tonumber(version) + 1,
  'updated_ms', now_ms, 'from_status', status)
for i = 7, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', task_key, ARGV[i])
  else
    redis.call('HSET', task_key, ARGV[i], ARGV[i + 1])
  end
end

if target == 'PENDING' or (target == 'PROCESSING' and status ~= 'PROCESSING') then
  redis.call('ZADD', deadlines, now_ms + tonumber(current[5]), task_id)
elseif target ~= 'PROCESSING' then
  redis.call('ZREM', deadlines, task_id)
end

if ARGV[6] == '1' then
  redis.call('PEXPIRE', task_key, tonumber(ARGV[5]))
else
  redis.call('PERSIST', task_key)
end

return {1, redis.call('HGETALL', task_key)}
