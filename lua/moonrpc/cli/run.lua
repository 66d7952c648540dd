-- moonrpc run: runs a Lua script with moonrpc on its paths, as
-- `tarantool script.lua` does: `arg` is set as lua5.4 would set it.

local USAGE = [[
usage: moonrpc run SCRIPT.lua [ARGS...]

Runs a Lua 5.4 script that uses require "moonrpc", with the module found
whether moonrpc is installed or run from its source tree. `arg` and `...`
are the script's arguments, as with lua5.4.

example:
  moonrpc run examples/lua/arith_registry_client.lua moonrpc://127.0.0.1:9000
]]

return function(args, util)
  local file = args[1]
  if not file or file == "--help" or file == "-h" then
    io.write(USAGE)
    os.exit(file and 0 or 2)
  end
  local chunk, err = loadfile(file)
  if not chunk then util.die(2, err) end
  local script_args = { table.unpack(args, 2) }
  script_args[0] = file
  _G.arg = script_args
  chunk(table.unpack(args, 2))
end
