-- task_synced.lua: the database has caught up with a task at ARGV[1]: take it out of
-- the unsynced set and, when it is finished, let its hash expire. Nothing happens when
-- the task has moved on since (a newer transition's own write is still to come).
--
-- KEYS[1]  task hash      (tf:task:<id>)
-- KEYS[2]  unsynced set   (tf:unsynced)
-- ARGV[1]  the version the database now holds
-- ARGV[2]  ttl_ms for a finished task's hash
-- ARGV[3]  the task id
--
-- Returns 1 if marked synced, 0 if the task moved on (or has no hot state).

local fields = redis.call('HMGET', KEYS[1], 'version', 'status')
if fields[1] ~= ARGV[1] then
  return 0
end
redis.call('SREM', KEYS[2], ARGV[3])
local status = fields[2]
if status == 'COMPLETED' or status == 'FAILED' or status == 'TIMEOUT' or status == 'CANCELLED' then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 1
