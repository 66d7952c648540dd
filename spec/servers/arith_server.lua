--- A small rpcx server run as a child process by the specs, so that a test
-- can kill it, stop it, or restart it on the same port.
--
--     lua5.4 spec/servers/arith_server.lua [port]
--
-- Prints "listening on ADDR" (flushed) once it serves, then runs the loop.
-- Service Arith: Mul {A,B} -> {C=A*B}; Slow {s} sleeps s seconds and
-- returns {slept=s}; Echo returns its args.
local moonrpc = require "moonrpc"

local port = tonumber(arg[1]) or 0
local s = moonrpc.server()
s:register("Arith", {
  Mul = function(_, a) return { C = a.A * a.B } end,
  Slow = function(_, a) moonrpc.sleep(a.s); return { slept = a.s } end,
  Echo = function(_, a) return a end,
})
local addr, err = s:serve("tcp", "127.0.0.1:" .. port)
if not addr then
  io.stdout:write("error ", tostring(err), "\n")
  io.stdout:flush()
  os.exit(1)
end
io.stdout:write("listening on ", addr, "\n")
io.stdout:flush()
moonrpc.run()
