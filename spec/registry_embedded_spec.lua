-- spec/registry_embedded_spec.lua: the embedded registry (moonrpc://) as
-- users meet it: served in-process with s:add_registry(), run as
-- `moonrpc registry`, called directly by any rpcx client (msgpack and JSON),
-- and killed and restarted under a live xclient: calls go on over the last
-- list, and once it is back every instance registers again and the list
-- resyncs.

local moonrpc = require "moonrpc"
local S = require "support"

local MOONRPC = S.spec_dir .. "/../scripts/moonrpc"

local addrs = S.addrs

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"rc=$?\""))
  local out = p:read("a")
  p:close()
  local body, rc = out:match("^(.-)rc=(%d+)\n$")
  return body, tonumber(rc)
end

describe("embedded registry", function()
  local opened
  before_each(function() opened = {} end)
  after_each(function()
    for i = #opened, 1, -1 do pcall(opened[i]) end
  end)

  it("runs inside any server with add_registry; instances and watches are counted", function()
    local rs = moonrpc.server()
    opened[#opened + 1] = function() rs:close() end
    assert(rs:add_registry{ max_entries = 10 })
    assert.has_error(function() rs:add_registry() end)
    local raddr = assert(rs:serve("tcp@127.0.0.1:0"))
    local url = "moonrpc://" .. raddr:gsub("^tcp@", "") .. "/spec"

    local s = moonrpc.server{ registry = url, ttl = 2 }
    opened[#opened + 1] = function() s:close() end
    s:register("Arith", { Who = function() return 1 end }, "weight=3")
    local addr, err, reg_err = s:serve("tcp@127.0.0.1:0")
    assert(addr, tostring(err))
    assert.is_nil(reg_err)
    assert.are.equal(1, rs:stats().registry_instances)

    local d = assert(moonrpc.registry_discovery(url, "spec", "Arith"))
    opened[#opened + 1] = function() d.watch.stop() end
    assert.are.same({ addr }, addrs((d:get())))
    assert.are.equal("weight=3", d:get()[1].metadata)
    assert.are.equal(1, rs:stats().registry_watches)
    local xc = moonrpc.xclient("Arith", moonrpc.Failover, moonrpc.RoundRobin, d, { timeout = 2 })
    opened[#opened + 1] = function() xc:close() end
    assert.are.equal(1, (xc:call("Who", {})))

    assert.is_true(s:shutdown(2)) -- unregisters first
    assert.are.equal(0, rs:stats().registry_instances)
    assert.is_true(S.eventually(function() return #d:get() == 0 end, 3))
    assert.is_nil(moonrpc.server():stats().registry_instances) -- no registry there
  end)

  it("`moonrpc registry` answers any rpcx client, msgpack or JSON", function()
    local reg = S.spawn(MOONRPC, "registry", "--listen", "tcp@127.0.0.1:0")
    opened[#opened + 1] = reg.stop
    local url = "moonrpc://" .. reg.host .. ":" .. reg.port
    local s = moonrpc.server{ registry = url, ttl = 5 }
    opened[#opened + 1] = function() s:close() end
    s:register("Arith", { Who = function() return 1 end }, "group=a")
    local addr = assert(s:serve("tcp@127.0.0.1:0"))
    -- msgpack, the default codec of moonrpc and of rpcx's Go client
    local xc = moonrpc.xclient("Registry", moonrpc.Failfast, moonrpc.RandomSelect,
                               moonrpc.peer2peer(reg.addr), { timeout = 2 })
    opened[#opened + 1] = function() xc:close() end
    local reply = assert(xc:call("List", { service = "Arith" }))
    assert.are.same({ { service = "Arith", addr = addr, meta = "group=a" } }, reply.instances)
    local _, e = xc:call("Register", { service = "X", addr = "tcp@1.2.3.4:5", ttl = 0 })
    assert.are.equal("EREMOTE", e.code)
    assert.matches("ttl must be 1..86400 seconds", e.message, 1, true)
    -- JSON from the command line, as curl-minded users would
    local out, rc = sh(("%q call %s Registry.List '{\"service\":\"Arith\"}' --json")
      :format(MOONRPC, reg.addr))
    assert.are.equal(0, rc, out)
    assert.matches(addr, out, 1, true)
    assert.is_true(s:shutdown(2))
  end)

  it("killed and restarted under a live xclient: calls go on, then the list resyncs", function()
    local reg = S.spawn(MOONRPC, "registry", "--listen", "tcp@127.0.0.1:0")
    opened[#opened + 1] = function() reg.stop() end
    local url = "moonrpc://" .. reg.host .. ":" .. reg.port
    local servers = S.who_servers(url, 2, 3, opened)
    local a1 = assert(servers[1]:serve("tcp@127.0.0.1:0"))
    local a2 = assert(servers[2]:serve("tcp@127.0.0.1:0"))
    local d = assert(moonrpc.registry_discovery(url, nil, "Arith"))
    opened[#opened + 1] = function() d.watch.stop() end
    local xc = moonrpc.xclient("Arith", moonrpc.Failover, moonrpc.RoundRobin, d, { timeout = 2 })
    opened[#opened + 1] = function() xc:close() end
    assert.are.same(addrs({ { addr = a1 }, { addr = a2 } }), addrs((d:get())))

    os.execute("kill -9 " .. reg.pid)
    assert.is_true(S.eventually(function() return not reg.alive() end, 3))
    -- Away for longer than the TTL: calls go on over the last list.
    local seen, t0 = {}, moonrpc.now()
    while moonrpc.now() - t0 < 2500 do
      seen[assert(xc:call("Who", {}))] = true
      moonrpc.sleep(0.05)
    end
    assert.is_true(seen[1] and seen[2], "both instances kept being called")
    assert.are.equal(2, #d:get())
    -- A server that starts meanwhile cannot register yet (the registry
    -- retries with backoff), and serves anyway.
    local a3, _, reg_err = servers[3]:serve("tcp@127.0.0.1:0")
    assert(a3)
    assert.is_truthy(reg_err)

    -- Back on the same port, empty: everything registers again and the
    -- watch reports the three instances.
    local again = S.spawn(MOONRPC, "registry", "--listen", "tcp@127.0.0.1:" .. reg.port)
    opened[#opened + 1] = again.stop
    assert.is_true(S.eventually(function() return #d:get() == 3 end, 8),
                   "resynced: " .. table.concat(addrs((d:get())), ", "))
    seen = {}
    for _ = 1, 6 do seen[assert(xc:call("Who", {}))] = true end
    assert.is_true(seen[1] and seen[2] and seen[3], "all three called")
  end)
end)
