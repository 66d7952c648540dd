-- spec/registry_spec.lua: registries through the Lua API, against a real
-- etcd and a real Redis (started by the ctest fixtures in spec/etcd.cmake
-- and spec/redis.cmake) and the embedded registry (`moonrpc registry`,
-- started here as a child process): self-registration on serve, discovery
-- by watch, graceful unregistration, and expiry of a killed instance.

local moonrpc = require "moonrpc"
local S = require "support"

local here = debug.getinfo(1, "S").source:match("^@(.*)$"):match("^(.*)/[^/]*$") or "."
local SERVER = here .. "/servers/registered_server.lua"

local backend_addr = S.backend_addr

local MOONRPC = here .. "/../scripts/moonrpc"
local backends = {
  { name = "moonrpc", start = function()
    return S.spawn(MOONRPC, "registry", "--listen", "tcp@127.0.0.1:0")
  end },
  { name = "etcd", addr = backend_addr("MOONRPC_ETCD_DIR") },
  { name = "redis", addr = backend_addr("MOONRPC_REDIS_DIR") },
}

local function base_path(tag)
  return ("moonrpc_spec_%d_%s_%d"):format(math.random(1e6), tag, os.time())
end

-- Starts registered_server.lua as a child; returns { addr, pid, kill }.
local function child(url, ttl, index)
  local cmd = ("exec lua5.4 %q %q %d %d"):format(SERVER, url, ttl, index)
  local p = assert(io.popen("echo $$; " .. cmd, "r"))
  local pid = tonumber(p:read("l"))
  local line = p:read("l") or ""
  local addr = line:match("^listening on (%S+)")
  return {
    addr = addr, pid = pid,
    kill = function()
      os.execute("kill -9 " .. pid .. " 2>/dev/null")
      p:close()
    end,
  }, line
end

local addrs = S.addrs

for _, b in ipairs(backends) do
  describe(b.name .. " registry", function()
    if b.start then
      local proc
      setup(function()
        proc = b.start()
        b.addr = proc.host .. ":" .. proc.port
      end)
      teardown(function() proc.stop() end)
    elseif S.pending_without(b) then return end

    local url, reg, opened
    before_each(function()
      url = ("%s://%s/%s"):format(b.name, b.addr, base_path(b.name))
      reg = assert(moonrpc.registry(url))
      opened = {}
    end)
    after_each(function()
      for i = #opened, 1, -1 do pcall(opened[i]) end
      reg:close()
    end)

    it("registers every service when serve returns, with rpcx's metadata", function()
      local s = moonrpc.server{ registry = reg, ttl = 5 }
      opened[#opened + 1] = function() s:close() end
      s:register("Arith", { Who = function() return 1 end }, "weight=10&group=a")
      local addr, err, reg_err = s:serve("tcp", "127.0.0.1:0")
      assert(addr, tostring(err))
      assert.is_nil(reg_err)
      local list = assert(reg:list("Arith"))
      assert.are.equal(1, #list)
      assert.are.equal(addr, list[1].addr)
      assert.are.equal("weight=10&group=a", list[1].metadata)
    end)

    it("feeds an xclient through registry_discovery and follows new instances", function()
      local servers = S.who_servers(reg, 5, 2, opened)
      assert(servers[1]:serve("tcp", "127.0.0.1:0"))
      local d = assert(moonrpc.registry_discovery(reg, nil, "Arith"))
      opened[#opened + 1] = function() d.watch.stop() end
      local xc = moonrpc.xclient("Arith", moonrpc.Failover, moonrpc.RoundRobin, d, { timeout = 2 })
      opened[#opened + 1] = function() xc:close() end
      assert.are.equal(1, (xc:call("Who", {})))
      assert(servers[2]:serve("tcp", "127.0.0.1:0"))
      assert.is_true(S.eventually(function() return #d:get() == 2 end, 5))
      local seen = {}
      for _ = 1, 4 do seen[assert(xc:call("Who", {}))] = true end
      assert.is_true(seen[1] and seen[2], "both instances reached")
    end)

    it("unregisters on graceful shutdown; the discovery drops the instance", function()
      local s = moonrpc.server{ registry = reg, ttl = 5 }
      s:register("Arith", { Who = function() return 1 end })
      assert(s:serve("tcp", "127.0.0.1:0"))
      local d = assert(moonrpc.registry_discovery(reg, nil, "Arith"))
      opened[#opened + 1] = function() d.watch.stop() end
      assert.are.equal(1, #d:get())
      assert.is_true(s:shutdown(2))
      assert.are.same({}, addrs(assert(reg:list("Arith"))))
      assert.is_true(S.eventually(function() return #d:get() == 0 end, 5))
    end)

    it("a killed instance disappears within its TTL", function()
      local c, line = child(url, 2, 7)
      opened[#opened + 1] = c.kill
      assert(c.addr, "child did not start: " .. line)
      assert.are.same({ c.addr }, addrs(assert(reg:list("Arith"))))
      local d = assert(moonrpc.registry_discovery(reg, nil, "Arith"))
      opened[#opened + 1] = function() d.watch.stop() end
      c.kill()
      local t0 = moonrpc.now()
      assert.is_true(S.eventually(function() return #d:get() == 0 end, 6))
      assert.is_true(moonrpc.now() - t0 < 5000, "gone within the TTL (2 s) plus slack")
      assert.are.same({}, addrs(assert(reg:list("Arith"))))
    end)

    it("reports a bad URL and an unreachable registry as errors", function()
      local r, err = moonrpc.registry(b.name .. "://nohost")
      assert.is_nil(r)
      assert.are.equal("EADDR", err.code)
      local dead = assert(moonrpc.registry(b.name .. "://127.0.0.1:1/x"))
      local ok, e = dead:list("Arith")
      assert.is_nil(ok)
      assert.is_truthy(e.code)
      dead:close()
    end)
  end)
end
