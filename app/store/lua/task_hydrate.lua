-- task_hydrate.lua: write a task's hot state unless Redis already has it.
-- Used on submission and to rebuild hot state from the database (after a Redis
-- restart or once a finished task expired); never overwrites a newer live copy.
--
-- A new task (ARGV[3] not empty) is counted as created in the live counters of the hour
-- of its created_ms, in the same call that writes it (field names: app/store/stats.py).
--
-- KEYS[1]  task hash            (tf:task:<id>)
-- KEYS[2]  deadlines zset       (tf:deadlines)
-- KEYS[3]  live counters hash   (tf:stats:live)
-- ARGV[1]  ttl_ms: expire the hash after this many ms, 0 to keep it
-- ARGV[2]  deadline_ms of the running attempt, or '' when not PROCESSING
-- ARGV[3]  the task's type if it is new and to be counted as created, else ''
-- ARGV[4]  created_ms
-- ARGV[5..] field, value pairs (must include 'id')
--
-- Returns 1 if written, 0 if the hash already existed.

if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local task_id
for i = 5, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  if ARGV[i] == 'id' then task_id = ARGV[i + 1] end
end
if ARGV[2] ~= '' then
  redis.call('ZADD', KEYS[2], tonumber(ARGV[2]), task_id)
end
if tonumber(ARGV[1]) > 0 then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
end
if ARGV[3] ~= '' then
  local hour = string.format('%d', math.floor(tonumber(ARGV[4]) / 3600000))
  redis.call('HINCRBY', KEYS[3], hour .. '|a||created', 1)
  redis.call('HINCRBY', KEYS[3], hour .. '|t|' .. ARGV[3] .. '|created', 1)
end
return 1
