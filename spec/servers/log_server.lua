-- spec/servers/log_server.lua LEVEL: a server for log_spec with the
-- default (stderr) sink at moonrpc.log.level = LEVEL and max_conns = 1, so
-- a second connection makes the core log "refusing a connection". Its
-- Arith.Div raises on B = 0. Prints "listening on ADDR".
local moonrpc = require "moonrpc"
moonrpc.log.level = arg[1] or "info"
local s = moonrpc.server{ max_conns = 1 }
s:register("Arith", {
  Div = function(ctx, args)
    if args.B == 0 then error("divide by zero") end
    return { C = args.A // args.B }
  end,
})
local addr = assert(s:serve("tcp@127.0.0.1:0"))
io.write("listening on ", addr, "\n")
io.stdout:flush()
moonrpc.signal("SIGTERM", function() s:close(); moonrpc.stop() end)
moonrpc.run()
