-- waiting_pop.lua: take the best waiting tasks across several waiting lines.
-- Each line holds the PENDING tasks of one requirement profile (capabilities, group),
-- scored by priority then age (lower first). The caller passes only the lines that a
-- freed server can serve, so a task that fits never waits behind one that does not.
--
-- KEYS[1..] lines: waiting line zsets (tf:waiting:<profile>)
-- ARGV[1] count: how many tasks to take at most
--
-- Returns the task ids taken, best first (each removed from its line).

local count = tonumber(ARGV[1])

local taken = {}
while #taken < count do
  local best_key, best_member, best_score = nil, nil, nil
  for _, key in ipairs(KEYS) do
    local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if head[1] and (best_score == nil or tonumber(head[2]) < best_score) then
      best_key, best_member, best_score = key, head[1], tonumber(head[2])
    end
  end
  if best_key == nil then break end
  redis.call('ZREM', best_key, best_member)
  taken[#taken + 1] = best_member
end
return taken
