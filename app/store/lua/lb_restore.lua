-- lb_restore.lua: put back the slot of a task attempt that the database says is running
-- on a server, after Redis lost it (restart without persistence). Does nothing if the
-- lease is there already, so it can run any number of times.
--
-- KEYS[1]  pool hash        (tf:pool:<p>)
-- KEYS[2]  pool avail zset  (tf:pool:<p>:avail)
-- KEYS[3]  pool leases hash (tf:pool:<p>:leases)
-- KEYS[4]  the algorithm in use (tf:lb:algorithm)
-- ARGV[1]  lease field '<task_id>:<attempt>'
-- ARGV[2]  server id
-- ARGV[3]  slot cost
-- ARGV[4]  now_ms
-- ARGV[5]  no-history EWMA penalty in ms
--
-- Returns 1 if the slot was restored, 0 if the lease existed.

if redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[2] .. '|' .. ARGV[3] .. '|' .. ARGV[4]) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], ARGV[2] .. '|used', tonumber(ARGV[3]))
reindex(KEYS[1], KEYS[2], ARGV[2], algorithm(KEYS[4]), tonumber(ARGV[5]))
return 1
