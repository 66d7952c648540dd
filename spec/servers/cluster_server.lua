--- One node of a test cluster, run as a child process by spec/cluster_spec.lua
-- so that a test can kill it (kill -9) or stop it (SIGSTOP) while an
-- xclient calls it.
--
--     lua5.4 spec/servers/cluster_server.lua INDEX [PORT]
--
-- Prints "listening on ADDR" (flushed) once it serves on 127.0.0.1:PORT
-- (PORT 0 or absent: any free port), then runs the loop. Service Node,
-- whose replies carry the node's INDEX so a caller sees which node it
-- reached (the same methods as the in-process nodes of cluster_spec.lua):
--   Who {key}       -> {i = INDEX, key = key}
--   Slow {s}        sleeps s seconds -> {i = INDEX}
--   Lag {slow, s}   sleeps s seconds when slow == INDEX -> {i = INDEX}
--   Maybe {bad}     raises when bad == INDEX or bad == "all" -> {i = INDEX}
-- SIGTERM shuts it down gracefully (calls in flight are answered, then the
-- connections close) and it exits 0.
local moonrpc = require "moonrpc"

local index = tonumber(arg[1])
local port = tonumber(arg[2]) or 0
if not index then
  io.stdout:write("error usage: cluster_server.lua INDEX [PORT]\n")
  io.stdout:flush()
  os.exit(2)
end

local s = moonrpc.server()
s:register("Node", {
  Who = function(_, a) return { i = index, key = type(a) == "table" and a.key or nil } end,
  Slow = function(_, a) moonrpc.sleep(a.s); return { i = index } end,
  Lag = function(_, a)
    if a.slow == index then moonrpc.sleep(a.s) end
    return { i = index }
  end,
  Maybe = function(_, a)
    if a.bad == index or a.bad == "all" then error("node " .. index .. " refuses") end
    return { i = index }
  end,
})
local addr, err = s:serve("tcp", "127.0.0.1:" .. port)
if not addr then
  io.stdout:write("error ", tostring(err), "\n")
  io.stdout:flush()
  os.exit(1)
end
io.stdout:write("listening on ", addr, "\n")
io.stdout:flush()
moonrpc.signal("SIGTERM", function()
  s:shutdown(5)
  os.exit(0)
end)
moonrpc.run()
