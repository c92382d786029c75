-- lb_rescore.lua: re-score every server in a pool's avail zset for a newly chosen
-- algorithm (run once per pool when the algorithm is switched).
--
-- KEYS[1] pool: pool hash (tf:pool:<p>)
-- KEYS[2] avail: pool avail zset (tf:pool:<p>:avail)
-- KEYS[3] fresh_set: pool fresh zset (tf:pool:<p>:fresh), sid -> ms its figures go stale
-- ARGV[1] alg: the algorithm to score for
-- ARGV[2] penalty_ms: no-history EWMA penalty in ms
-- ARGV[3] now_ms: now in ms (resource-aware scores only figures fresh at this time)
--
-- Returns how many servers were re-scored.

local pool = KEYS[1]
local avail = KEYS[2]
local fresh_set = KEYS[3]
local alg = ARGV[1]
local penalty_ms = tonumber(ARGV[2])
local now_ms = tonumber(ARGV[3])

local members = redis.call('ZRANGE', avail, 0, -1)
for _, sid in ipairs(members) do
  reindex(pool, avail, fresh_set, sid, alg, penalty_ms, now_ms)
end
return #members
