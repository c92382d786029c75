-- lb_rescore.lua: re-score every server in a pool's avail zset for a newly chosen
-- algorithm (run once per pool when the algorithm is switched).
--
-- KEYS[1]  pool hash        (tf:pool:<p>)
-- KEYS[2]  pool avail zset  (tf:pool:<p>:avail)
-- ARGV[1]  algorithm
-- ARGV[2]  no-history EWMA penalty in ms
--
-- Returns how many servers were re-scored.

local members = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, sid in ipairs(members) do
  reindex(KEYS[1], KEYS[2], sid, ARGV[1], tonumber(ARGV[2]))
end
return #members
