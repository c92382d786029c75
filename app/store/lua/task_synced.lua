-- task_synced.lua: the database has caught up with a task at a version: take it out of
-- the unsynced set and, when it is finished, let its hash expire. Nothing happens when
-- the task has moved on since (a newer transition's own write is still to come).
--
-- KEYS[1] task: task hash (tf:task:<id>)
-- KEYS[2] unsynced: unsynced set (tf:unsynced)
-- ARGV[1] version: the version the database now holds
-- ARGV[2] ttl_ms: ttl in ms for a finished task's hash
-- ARGV[3] task_id: the task id
--
-- Returns 1 if marked synced, 0 if the task moved on (or has no hot state).

local task = KEYS[1]
local unsynced = KEYS[2]
local version = ARGV[1]
local ttl_ms = tonumber(ARGV[2])
local task_id = ARGV[3]

local fields = redis.call('HMGET', task, 'version', 'status')
if fields[1] ~= version then
  return 0
end
redis.call('SREM', unsynced, task_id)
local status = fields[2]
if status == 'COMPLETED' or status == 'FAILED' or status == 'TIMEOUT' or status == 'CANCELLED' then
  redis.call('PEXPIRE', task, ttl_ms)
end
return 1
