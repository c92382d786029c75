-- task_defer.lua: accept a new task that does not start at once (SCHEDULED or WAITING).
-- Such a task gets no hot state (a million of them must not fill Redis); it is counted
-- as created here, as task_hydrate.lua counts a task that starts at once (field names:
-- app/core/tally.py), and a SCHEDULED one is put on the start schedule in the same call.
--
-- KEYS[1] starts: start schedule zset (tf:starts:due), task_id -> run_at ms
-- KEYS[2] stats: live counters hash (tf:stats:live)
-- ARGV[1] task_id: the task's id
-- ARGV[2] due_ms: when it is to start (SCHEDULED), or '' when it waits for dependencies
-- ARGV[3] task_type: the task's type
-- ARGV[4] created_ms: when the task was created, in ms
--
-- Returns 1.

local starts = KEYS[1]
local stats = KEYS[2]
local task_id = ARGV[1]
local due_ms = ARGV[2]
local task_type = ARGV[3]
local created_ms = tonumber(ARGV[4])

if due_ms ~= '' then
  redis.call('ZADD', starts, tonumber(due_ms), task_id)
end
local hour = string.format('%d', math.floor(created_ms / 3600000))
redis.call('HINCRBY', stats, hour .. '|a||created', 1)
redis.call('HINCRBY', stats, hour .. '|t|' .. task_type .. '|created', 1)
return 1
