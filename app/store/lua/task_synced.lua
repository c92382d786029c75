-- task_synced.lua: the database has caught up with a task at a version: take it out of
-- the unsynced set and, when it is finished, let its hash expire. Nothing happens when
-- the task has moved on since (a newer transition's own write is still to come).
-- The task's event stream expires with its hash.
--
-- KEYS[1] task: task hash (tf:task:<id>)
-- KEYS[2] unsynced: unsynced set (tf:unsynced)
-- KEYS[3] events: the task's event stream (tf:events:<id>)
-- ARGV[1] version: the version the database now holds
-- ARGV[2] ttl_ms: ttl in ms for a finished task's hash
-- ARGV[3] task_id: the task id
-- ARGV[4] final_statuses: the final statuses, comma-separated (from
--         app.core.states.FINAL_STATUSES, so Python and Lua cannot disagree)
--
-- Returns 1 if marked synced, 0 if the task moved on (or has no hot state).

local task = KEYS[1]
local unsynced = KEYS[2]
local events = KEYS[3]
local version = ARGV[1]
local ttl_ms = tonumber(ARGV[2])
local task_id = ARGV[3]
local final_statuses = ARGV[4]

local fields = redis.call('HMGET', task, 'version', 'status')
if fields[1] ~= version then
  return 0
end
redis.call('SREM', unsynced, task_id)
local status = fields[2]
local finished = false
for final in string.gmatch(final_statuses, '([^,]+)') do
  if final == status then finished = true end
end
if finished then
  redis.call('PEXPIRE', task, ttl_ms)
  redis.call('PEXPIRE', events, ttl_ms)
end
return 1
