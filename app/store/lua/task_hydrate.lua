-- task_hydrate.lua: write a task's hot state unless Redis already has it.
-- Used on submission and to rebuild hot state from the database (after a Redis
-- restart or once a finished task expired); never overwrites a newer live copy.
--
-- A new task (new_task_type not empty) is counted as created in the live counters of the
-- hour of its created_ms, in the same call that writes it (field names: app/core/tally.py),
-- and its first event (a 'status' event, id '<version>-0': app/core/events.py) starts
-- its event stream. A task rebuilt from the database gets no event here: the stream's
-- reader rebuilds the ones Redis lost from the database. The stream expires with the hash.
--
-- KEYS[1] task: task hash (tf:task:<id>)
-- KEYS[2] deadlines: deadlines zset (tf:deadlines)
-- KEYS[3] stats: live counters hash (tf:stats:live)
-- KEYS[4] events: the task's event stream (tf:events:<id>)
-- ARGV[1] ttl_ms: expire the hash after this many ms, 0 to keep it
-- ARGV[2] deadline_ms: deadline of the waiting task or running attempt in ms, or ''
--         when it has none
-- ARGV[3] new_task_type: the task's type if it is new and to be counted as created,
--         else ''
-- ARGV[4] created_ms: when the task was created, in ms
-- ARGV[5] maxlen: entries the event stream keeps at most (approximately)
-- ARGV[6..] fields: field, value pairs (must include 'id')
--
-- Returns 1 if written, 0 if the hash already existed.

local task = KEYS[1]
local deadlines = KEYS[2]
local stats = KEYS[3]
local events = KEYS[4]
local ttl_ms = tonumber(ARGV[1])
local deadline_ms = ARGV[2]
local new_task_type = ARGV[3]
local created_ms = tonumber(ARGV[4])
local maxlen = ARGV[5]

if redis.call('EXISTS', task) == 1 then
  return 0
end
local task_id
local fields = {}
for i = 6, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  if ARGV[i] == 'id' then task_id = ARGV[i + 1] end
end
redis.call('HSET', task, unpack(fields))  -- one command for every field
if deadline_ms ~= '' then
  redis.call('ZADD', deadlines, tonumber(deadline_ms), task_id)
end
if ttl_ms > 0 then
  redis.call('PEXPIRE', task, ttl_ms)
  redis.call('PEXPIRE', events, ttl_ms)
else
  redis.call('PERSIST', events)
end
if new_task_type ~= '' then
  local first = redis.call('HMGET', task, 'version', 'status', 'attempt')
  local top = redis.call('XREVRANGE', events, '+', '-', 'COUNT', 1)[1]
  if not top then
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, first[1] .. '-0', 'event', 'status',
      'status', first[2], 'attempt', first[3] or '0', 'at', string.format('%d', created_ms))
  end
  local hour = string.format('%d', math.floor(created_ms / 3600000))
  redis.call('HINCRBY', stats, hour .. '|a||created', 1)
  redis.call('HINCRBY', stats, hour .. '|t|' .. new_task_type .. '|created', 1)
end
return 1
