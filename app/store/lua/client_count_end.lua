-- client_count_end.lua: install the count of a recount client_count_begin.lua started,
-- unless a later one superseded it (its lease ran out). Admissions older than
-- `stale_before_ms` are dropped from 'inflight': their submission ended long ago (a
-- process that died before settling), and the count holds them if they were stored.
--
-- KEYS[1] usage: the client's hash (tf:client:<sub>)
-- KEYS[2] admissions: zset '<admission id>|<count>' -> ms admitted, of unsettled ones
-- ARGV[1] generation: as client_count_begin.lua returned it
-- ARGV[2] base: the client's unfinished tasks in the database, counted after the begin
-- ARGV[3] mark: settled when the recount began
-- ARGV[4] now_ms: now
-- ARGV[5] stale_before_ms: admissions before this are dropped
-- ARGV[6] ttl_ms: both keys expire after this long without a submission
--
-- Returns 1 if installed, 0 if superseded.

local usage = KEYS[1]
local admissions = KEYS[2]
local generation = tonumber(ARGV[1])
local base = tonumber(ARGV[2])
local mark = tonumber(ARGV[3])
local now_ms = tonumber(ARGV[4])
local stale_before_ms = tonumber(ARGV[5])
local ttl_ms = tonumber(ARGV[6])

local state = redis.call('HMGET', usage, 'gen', 'settled', 'inflight')
if tonumber(state[1]) ~= generation then
  return 0
end
local stale_below = '(' .. stale_before_ms  -- exclusive
local dropped = 0
for _, member in ipairs(redis.call('ZRANGEBYSCORE', admissions, '-inf', stale_below)) do
  dropped = dropped + tonumber(string.match(member, '|(%d+)$'))
end
local settled = math.max(0, (tonumber(state[2]) or 0) - mark)
local inflight = math.max(0, (tonumber(state[3]) or 0) - dropped)
redis.call('ZREMRANGEBYSCORE', admissions, '-inf', stale_below)
redis.call('HSET', usage, 'base', base, 'settled', settled, 'inflight', inflight, 'counted_ms', now_ms)
redis.call('HDEL', usage, 'counting')
redis.call('PEXPIRE', usage, ttl_ms)
redis.call('PEXPIRE', admissions, ttl_ms)
return 1
