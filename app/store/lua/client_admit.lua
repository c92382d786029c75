-- client_admit.lua: admit a client's submission of `count` tasks, or say why not. It
-- takes `count` tokens from the client's bucket (at most `burst` tokens, refilled at
-- `rate_per_s`) and needs room for `count` more unfinished tasks under the cap, where
-- the client's unfinished tasks are counted as
--   base      the database's count at the last recount (client_count_end.lua)
--   + settled tasks stored since that recount began
--   + inflight tasks admitted and not yet settled (client_settle.lua),
-- never less than the true count. Refused, nothing is written.
--
-- KEYS[1] usage: the client's hash (tf:client:<sub>): tokens, at_ms, base, settled,
--   inflight, counted_ms, gen, counting, count_begun_ms
-- KEYS[2] admissions: zset '<admission id>|<count>' -> ms admitted, of unsettled ones
-- ARGV[1] now_ms: now
-- ARGV[2] rate_per_s: tokens the bucket regains per second
-- ARGV[3] burst: tokens the bucket holds at most (a new bucket is full)
-- ARGV[4] max_unfinished: the cap on the client's unfinished tasks
-- ARGV[5] count: tasks submitted (their cost in tokens)
-- ARGV[6] admission: '<admission id>|<count>', the name client_settle.lua is given
-- ARGV[7] ttl_ms: both keys expire after this long without a submission
-- ARGV[8] own_base: a count of the client's unfinished tasks the caller just took while
--   another recount held the hash (-1: none); used only where the hash has no base
-- ARGV[9] own_mark: the hash's settled when that count began
--
-- Returns {0, tokens left} admitted; {1, ms until enough tokens} too fast; {2, 0} no
-- count of the client's unfinished tasks (recount, then call again); {3, unfinished
-- counted} no room under the cap.

local usage = KEYS[1]
local admissions = KEYS[2]
local now_ms = tonumber(ARGV[1])
local rate_per_s = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local max_unfinished = tonumber(ARGV[4])
local count = tonumber(ARGV[5])
local admission = ARGV[6]
local ttl_ms = tonumber(ARGV[7])
local own_base = tonumber(ARGV[8])
local own_mark = tonumber(ARGV[9])

local state = redis.call('HMGET', usage, 'tokens', 'at_ms', 'base', 'settled', 'inflight')
local tokens = burst
if state[1] then
  local elapsed_ms = math.max(0, now_ms - tonumber(state[2]))
  tokens = math.min(burst, tonumber(state[1]) + elapsed_ms * rate_per_s / 1000)
end
if tokens < count then
  return {1, math.ceil((count - tokens) * 1000 / rate_per_s)}
end

local settled = tonumber(state[4]) or 0
local base = tonumber(state[3])
if not base then
  if own_base < 0 then
    return {2, 0}
  end
  base = own_base
  settled = math.max(0, settled - own_mark)
end
local inflight = tonumber(state[5]) or 0
local unfinished = base + settled + inflight
if unfinished + count > max_unfinished then
  return {3, unfinished}
end

local left = tokens - count
redis.call('HSET', usage, 'tokens', string.format('%.6f', left), 'at_ms', now_ms,
  'inflight', inflight + count)
redis.call('ZADD', admissions, now_ms, admission)
redis.call('PEXPIRE', usage, ttl_ms)
redis.call('PEXPIRE', admissions, ttl_ms)
return {0, math.floor(left)}
