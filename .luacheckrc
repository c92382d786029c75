-- luacheck configuration for the Redis Lua scripts (app/store/lua); `make lint` runs
-- `luacheck app/store/lua`. Redis runs scripts on Lua 5.1 with these globals.
std = "lua51"
read_globals = {"redis", "KEYS", "ARGV", "cjson", "cmsgpack", "bit", "struct", "unpack"}
max_line_length = 110

-- app/store/scripts.py prepends lib/pool.lua to the lb_* scripts: its top-level locals
-- are in scope there, and unused in the library itself.
-- (tests/store/test_script_contracts.py keeps this list equal to the library's.)
local pool_lib = {
  "DEFAULT_ALGORITHM", "STRIDE", "FIELDS", "FRESH_MS", "UNKNOWN_LOAD", "MAX_PRIORITY", "PRIORITY_STEP",
  "algorithm", "load", "pf", "fresh", "resource_score", "cost_of", "score", "can_take", "reindex",
}

local unused_in_lib = {}
for i, name in ipairs(pool_lib) do unused_in_lib[i] = "211/" .. name end

files["app/store/lua/lb_*.lua"] = {read_globals = pool_lib}
files["app/store/lua/lib/pool.lua"] = {ignore = unused_in_lib}
