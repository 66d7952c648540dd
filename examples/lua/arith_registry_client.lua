-- examples/lua/arith_registry_client.lua: finds the Arith instances through
-- a registry and calls them, as rpcx's registry examples do with
-- NewEtcdV3Discovery + NewXClient(..., Failover, RoundRobin, ...).
--   lua5.4 examples/lua/arith_registry_client.lua moonrpc://127.0.0.1:9000 [SECONDS]
-- With SECONDS it then keeps calling for that long, one call every 20 ms,
-- and prints which instances answer: stop one meanwhile and the calls go on.
local moonrpc = require "moonrpc"

local url, seconds = arg[1] or "moonrpc://127.0.0.1:9000", tonumber(arg[2] or 0)
local d = assert(moonrpc.registry_discovery(url, nil, "Arith"))
local xc = moonrpc.xclient("Arith", moonrpc.Failover, moonrpc.RoundRobin, d,
                           { timeout = 2, retries = 3 })

-- "1 call", "2 calls".
local function count(n, one, many) return ("%d %s"):format(n, n == 1 and one or many) end

local servers = {}
for _, s in ipairs((d:get())) do servers[#servers + 1] = s.addr end
print(("registry %s lists %s: %s")
  :format(url, count(#servers, "Arith instance", "Arith instances"), table.concat(servers, ", ")))

-- Synchronous calls, spread by RoundRobin.
for i = 1, 2 do
  local reply, err, meta = xc:call("Mul", { A = 7, B = i })
  assert(not err, tostring(err))
  print(("Arith.Mul {A=7, B=%d} -> C=%d   (served by %s)"):format(i, reply.C, meta.served_by))
end

-- Asynchronous calls in flight at once (xclient.Go).
local calls, started = {}, moonrpc.now()
for i = 1, 4 do calls[i] = xc:go("SlowMul", { A = i, B = 10, ms = 100 }) end
local by = {}
for i, call in ipairs(calls) do
  local reply, err, meta = call:wait()
  assert(not err and reply.C == i * 10, tostring(err))
  by[#by + 1] = meta.served_by
end
print(("4 SlowMul go() calls of 100 ms in %d ms, served by %s")
  :format(moonrpc.now() - started, table.concat(by, ", ")))

-- Calls for a while: the instances answering, as they change.
if seconds > 0 then
  local ok, failed, last, deadline = 0, 0, nil, moonrpc.now() + seconds * 1000
  local seen, version = {}, select(2, d:get())
  while moonrpc.now() < deadline do
    local list, v = d:get()
    if v ~= version then
      local addrs = {}
      for _, srv in ipairs(list) do addrs[#addrs + 1] = srv.addr end
      print(("registry now lists %s: %s"):format(count(#addrs, "instance", "instances"),
                                                 table.concat(addrs, ", ")))
      version = v
    end
    local reply, err, meta = xc:call("Mul", { A = 6, B = 7 })
    if err or reply.C ~= 42 then
      failed = failed + 1
      print("call failed: " .. tostring(err))
    else
      ok = ok + 1
      seen[meta.served_by] = moonrpc.now()
    end
    local now, live = moonrpc.now(), {}
    for addr, t in pairs(seen) do if now - t < 500 then live[#live + 1] = addr end end
    table.sort(live)
    local key = table.concat(live, ", ")
    if key ~= last then
      print(("%s ok, %d failed; answering now: %s"):format(count(ok, "call", "calls"), failed, key))
      last = key
    end
    moonrpc.sleep(0.02)
  end
  print(("%s ok, %d failed"):format(count(ok, "call", "calls"), failed))
  if failed > 0 then os.exit(1) end
end
xc:close()
