-- task_transition.lua: compare-and-set one task's state.
-- Moves the task to target only if its status is one of sources and, when
-- expected_attempt is not empty, its attempt equals expected_attempt. Bumps the
-- version, stamps updated_ms, sets the given fields and keeps the deadline index in
-- step. Everything is checked before the first write.
-- The database follows each transition: until the caller says it has (mark_synced:
-- which also expires a finished task's hash), the task is in the unsynced set and its
-- hash never expires, so a worker killed between the two writes leaves the change for
-- reconcile to write, with how the attempt ended ('attempt_outcome').
-- Deadlines: entering PENDING or PROCESSING starts one of timeout_ms (a task waits for
-- a server at most that long, and an attempt runs at most that long); a progress
-- update keeps it; any other state has none.
-- Statistics: the same call counts the event in the live counters of the hour of
-- now_ms (field names: app/core/tally.py), so a counter moves exactly when the state
-- does.
-- Events: the same call appends the transition's event to the task's event stream with
-- id '<new version>-0' (app/core/events.py): 'progress' for a PROCESSING -> PROCESSING
-- update whose progress changed (none when it did not), 'status' for any other, its
-- 'error' shown by the rule of events.error_shown. The stream never expires while the
-- task's hash does not (task_synced.lua expires both).
--
-- KEYS[1] task: task hash (tf:task:<id>)
-- KEYS[2] deadlines: deadlines zset (tf:deadlines), task_id -> deadline_ms
-- KEYS[3] stats: live counters hash (tf:stats:live), '<hour>|<scope>|<key>|<metric>' -> n
-- KEYS[4] latency: dispatch latency hash (tf:metrics:dispatch_latency),
--         bucket -> n, sum_ms, count
-- KEYS[5] unsynced: unsynced set (tf:unsynced), tasks the database may be behind on
-- KEYS[6] events: the task's event stream (tf:events:<id>)
-- ARGV[1] sources: allowed source statuses, comma-separated
-- ARGV[2] target: target status
-- ARGV[3] expected_attempt: expected attempt, or '' for any
-- ARGV[4] now_ms: now in ms
-- ARGV[5] is_final: '1' if the target status is final, else '0'
-- ARGV[6] attempt_outcome: how the running attempt ended (COMPLETED, FAILED, TIMEOUT,
--         BUSY, CANCELLED), or '' when no attempt ends here
-- ARGV[7] maxlen: entries the event stream keeps at most (approximately)
-- ARGV[8..] fields: field, value pairs to set; an empty value deletes the field
--
-- Returns {1, <flat HGETALL after the write>} on success,
--         {0, status, attempt} when the task is in another state or attempt,
--         {-1} when the task has no hot state.

local task = KEYS[1]
local deadlines = KEYS[2]
local stats = KEYS[3]
local latency = KEYS[4]
local unsynced = KEYS[5]
local events = KEYS[6]
local sources = ARGV[1]
local target = ARGV[2]
local expected_attempt = ARGV[3]
local now_ms = tonumber(ARGV[4])
local is_final = ARGV[5]
local attempt_outcome = ARGV[6]
local maxlen = ARGV[7]

-- Upper bounds (ms) of the dispatch-latency buckets; app.core.metrics has the same list.
local LATENCY_BUCKETS_MS = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000}

local current = redis.call('HMGET', task, 'status', 'attempt', 'version', 'id', 'timeout_ms',
  'type', 'server_id', 'started_ms', 'updated_ms', 'progress')
local status, attempt, version, task_id = current[1], current[2], current[3], current[4]
local task_type, server_id, started_ms = current[6] or '', current[7], tonumber(current[8])
if not status then
  return {-1}
end

local allowed = false
for source in string.gmatch(sources, '([^,]+)') do
  if source == status then allowed = true end
end
if not allowed or (expected_attempt ~= '' and expected_attempt ~= attempt) then
  return {0, status, attempt}
end

-- Explicit stream ids must grow: one at or past this version (cannot happen while
-- versions only grow, but a failed XADD after the writes below could not be undone).
local new_version = tonumber(version) + 1
local top = redis.call('XREVRANGE', events, '+', '-', 'COUNT', 1)[1]
local emit = not top or tonumber(string.match(top[1], '^(%d+)')) < new_version

-- One HSET and at most one HDEL, however many fields change.
local sets = {'status', target, 'version', new_version, 'updated_ms', now_ms, 'from_status', status}
local dels = {}
if attempt_outcome ~= '' then
  sets[#sets + 1] = 'attempt_outcome'
  sets[#sets + 1] = attempt_outcome
else
  dels[#dels + 1] = 'attempt_outcome'
end
for i = 8, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    dels[#dels + 1] = ARGV[i]
  else
    sets[#sets + 1] = ARGV[i]
    sets[#sets + 1] = ARGV[i + 1]
  end
end
redis.call('HSET', task, unpack(sets))
if #dels > 0 then
  redis.call('HDEL', task, unpack(dels))
end

if target == 'PENDING' or (target == 'PROCESSING' and status ~= 'PROCESSING') then
  redis.call('ZADD', deadlines, now_ms + tonumber(current[5]), task_id)
elseif target ~= 'PROCESSING' then
  redis.call('ZREM', deadlines, task_id)
end

redis.call('PERSIST', task)
redis.call('SADD', unsynced, task_id)

local after = redis.call('HMGET', task, 'attempt', 'server_id', 'progress', 'error')
local event_id = string.format('%d-0', new_version)
if not emit then
  redis.log(redis.LOG_WARNING, 'task_transition: event stream of ' .. task_id .. ' is ahead of it')
elseif status == 'PROCESSING' and target == 'PROCESSING' then
  if after[3] and after[3] ~= current[10] then
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, event_id, 'event', 'progress', 'progress', after[3])
  end
else
  local entry = {'event', 'status', 'status', target, 'attempt', after[1] or '0',
    'at', string.format('%d', now_ms)}
  if after[2] then
    table.insert(entry, 'server_id')
    table.insert(entry, after[2])
  end
  local failed = attempt_outcome == 'FAILED' or attempt_outcome == 'TIMEOUT'
  if after[4] and (failed or target == 'FAILED' or target == 'TIMEOUT') then
    table.insert(entry, 'error')
    table.insert(entry, after[4])
  end
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, event_id, unpack(entry))
end
redis.call('PERSIST', events)

local hour = string.format('%d', math.floor(now_ms / 3600000))
local function count(scope, key, metric, by)
  redis.call('HINCRBY', stats, hour .. '|' .. scope .. '|' .. key .. '|' .. metric, by)
end
local function count_task(metric, by)
  count('a', '', metric, by)
  count('t', task_type, metric, by)
end
local attempt_failed = attempt_outcome == 'FAILED' or attempt_outcome == 'TIMEOUT'

if is_final == '1' then
  count_task(string.lower(target), 1)
  if target == 'COMPLETED' and started_ms then
    count_task('duration_ms', now_ms - started_ms)
  end
end
if target == 'PENDING' and (status == 'FAILED' or status == 'TIMEOUT'
    or (status == 'PROCESSING' and attempt_failed)) then
  count_task('retried', 1)
end
if status == 'PROCESSING' and server_id and started_ms
    and (attempt_outcome == 'COMPLETED' or attempt_failed) then
  count('s', server_id, attempt_failed and 'attempts_failed' or 'attempts_ok', 1)
  count('s', server_id, 'attempt_ms', now_ms - started_ms)
  local last = hour .. '|s|' .. server_id .. '|last_active_ms'
  if now_ms > tonumber(redis.call('HGET', stats, last) or '0') then
    redis.call('HSET', stats, last, now_ms)
  end
end

if status == 'PENDING' and target == 'PROCESSING' and current[9] then
  local waited = math.max(0, now_ms - tonumber(current[9]))
  local bucket = 'inf'
  for _, bound in ipairs(LATENCY_BUCKETS_MS) do
    if waited <= bound then
      bucket = tostring(bound)
      break
    end
  end
  redis.call('HINCRBY', latency, bucket, 1)
  redis.call('HINCRBY', latency, 'sum_ms', waited)
  redis.call('HINCRBY', latency, 'count', 1)
end

return {1, redis.call('HGETALL', task)}
