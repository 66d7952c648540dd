-- spec/servers/registered_server.lua URL TTL INDEX: an Arith server that
-- registers itself in the registry at URL with a lease of TTL seconds.
-- Prints "listening on ADDR" once registered. Used by registry_spec to
-- kill a registered instance with -9.
local moonrpc = require "moonrpc"
local url, ttl, index = arg[1], tonumber(arg[2] or "2"), tonumber(arg[3] or "1")
local s = moonrpc.server{ registry = url, ttl = ttl }
s:register("Arith", { Who = function() return index end }, "weight=1&index=" .. index)
local addr, err, reg_err = s:serve("tcp", "127.0.0.1:0")
if not addr then io.stderr:write(tostring(err), "\n") os.exit(1) end
if reg_err then io.stderr:write(tostring(reg_err), "\n") os.exit(1) end
io.write("listening on ", addr, "\n")
io.stdout:flush()
moonrpc.run()
