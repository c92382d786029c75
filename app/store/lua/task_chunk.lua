-- task_chunk.lua: append a chunk of a running attempt's output to the task's event
-- stream, if the task is still PROCESSING at that attempt. The chunk's id is
-- '<version>-<n>' (app/core/events.py): n counts the chunks of the task's current
-- version from 1 (its transition's event is '<version>-0'). The version is not bumped:
-- a chunk is not a transition.
--
-- KEYS[1] task: task hash (tf:task:<id>)
-- KEYS[2] events: the task's event stream (tf:events:<id>)
-- ARGV[1] attempt: the attempt the chunk belongs to
-- ARGV[2] maxlen: entries the event stream keeps at most (approximately)
-- ARGV[3..] chunks: the chunks' data (JSON text each), in order
--
-- Returns {1, <id of the last chunk written>} on success,
--         {0, status, attempt} when the task is in another state or attempt,
--         {-1} when the task has no hot state.

local task = KEYS[1]
local events = KEYS[2]
local attempt = ARGV[1]
local maxlen = ARGV[2]

local current = redis.call('HMGET', task, 'status', 'attempt', 'version')
local status, version = current[1], tonumber(current[3])
if not status then
  return {-1}
end
if status ~= 'PROCESSING' or current[2] ~= attempt then
  return {0, status, current[2]}
end

local seq = 1
local top = redis.call('XREVRANGE', events, '+', '-', 'COUNT', 1)[1]
if top then
  local top_version, top_seq = string.match(top[1], '^(%d+)-(%d+)$')
  if tonumber(top_version) > version then
    return {0, status, current[2]}
  end
  if tonumber(top_version) == version then
    seq = tonumber(top_seq) + 1
  end
end

local id
for i = 3, #ARGV do
  id = string.format('%d-%d', version, seq)
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, id, 'event', 'chunk', 'data', ARGV[i])
  seq = seq + 1
end
return {1, id}
