-- examples/lua/arith_client.lua: calls Arith as rpcx's client examples do.
--   lua5.4 examples/lua/arith_client.lua tcp@127.0.0.1:8972
local moonrpc = require "moonrpc"

local addr = arg[1] or "tcp@127.0.0.1:8972"
local d = moonrpc.peer2peer(addr)
local xc = moonrpc.xclient("Arith", moonrpc.Failtry, moonrpc.RandomSelect, d, { timeout = 5 })

-- Synchronous, like xclient.Call: at a script's top level this runs the loop.
local reply, err = xc:call("Mul", { A = 7, B = 8 })
assert(not err, tostring(err))
print(("Arith.Mul {A=7, B=8} -> C=%d"):format(reply.C))

-- Several calls in flight at once from coroutines, like xclient.Go.
local results, started = {}, moonrpc.now()
local finished, left = moonrpc.future(), 5
for i = 1, 5 do
  moonrpc.spawn(function()
    local call = xc:go("SlowMul", { A = i, B = 10, ms = 100 })
    local r, e = call:wait() -- yields this coroutine only
    results[i] = e and tostring(e) or r.C
    left = left - 1
    if left == 0 then finished:set() end
  end)
end
finished:wait() -- at top level: runs the loop until the coroutines are done
print(("5 SlowMul calls of 100 ms each, in flight at once: %s in %d ms")
  :format(table.concat(results, " "), moonrpc.now() - started))
for i = 1, 5 do assert(results[i] == i * 10, "SlowMul " .. i) end

-- The error case: the service raised "divide by zero".
local r, e = xc:call("Div", { A = 1, B = 0 })
assert(r == nil and e.code == "EREMOTE" and e.message == "divide by zero", tostring(e))
print(("Arith.Div {A=1, B=0} -> error %s"):format(tostring(e)))

xc:close()
