-- spec/registry_outage_spec.lua: a registry that goes away under a live
-- xclient. With etcd or Redis stopped (by the fixture scripts, on the same
-- port), calls go on over the last list the discovery had, without a busy
-- loop; once the registry is back the list resyncs, including an instance
-- registered during the outage.

local moonrpc = require "moonrpc"
local S = require "support"

local backend_addr = S.backend_addr

-- The fixture scripts take a backend away and bring it back on its port
-- (etcd keeps its data; Redis comes back empty and the registries register
-- again). They must not inherit the sanitizer preload of the _asan run.
local function sh(cmd)
  local ok = os.execute("env -u LD_PRELOAD " .. cmd .. " >/dev/null 2>&1")
  assert(ok, "failed: " .. cmd)
end

local fixtures = S.spec_dir .. "/fixtures/"
local etcd_dir, redis_dir = os.getenv("MOONRPC_ETCD_DIR"), os.getenv("MOONRPC_REDIS_DIR")
local backends = {
  { name = "etcd", addr = backend_addr("MOONRPC_ETCD_DIR"),
    down = function() sh(("sh %q pause %q"):format(fixtures .. "etcd.sh", etcd_dir)) end,
    up = function() sh(("sh %q resume %q"):format(fixtures .. "etcd.sh", etcd_dir)) end },
  { name = "redis", addr = backend_addr("MOONRPC_REDIS_DIR"),
    down = function() sh(("sh %q stop %q"):format(fixtures .. "redis.sh", redis_dir)) end,
    up = function(addr)
      sh(("sh %q start %q %s"):format(fixtures .. "redis.sh", redis_dir, addr:match(":(%d+)$")))
    end },
}

local function addrs(d) return table.concat(S.addrs(d:get()), " ") end

for _, b in ipairs(backends) do
  describe(b.name .. " registry outage", function()
    if S.pending_without(b) then return end

    local reg, opened, back
    before_each(function()
      local base = ("moonrpc_outage_%d_%d"):format(math.random(1e6), os.time())
      reg = assert(moonrpc.registry(("%s://%s/%s"):format(b.name, b.addr, base)))
      opened, back = {}, true
    end)
    after_each(function()
      if not back then b.up(b.addr) end -- the next spec needs it
      for i = #opened, 1, -1 do pcall(opened[i]) end
      reg:close()
    end)

    it("keeps calling on the last list while it is away, and resyncs when it is back", function()
      local servers = S.who_servers(reg, 3, 2, opened)
      local addr1 = assert(servers[1]:serve("tcp", "127.0.0.1:0"))
      local d = assert(moonrpc.registry_discovery(reg, nil, "Arith"))
      opened[#opened + 1] = function() d.watch.stop() end
      local xc = moonrpc.xclient("Arith", moonrpc.Failover, moonrpc.RoundRobin, d, { timeout = 2 })
      opened[#opened + 1] = function() xc:close() end
      assert.are.equal(1, (xc:call("Who", {})))
      assert.are.equal(addr1, addrs(d))

      back = false
      b.down()
      -- Calls go on over the cached list; the process stays idle between
      -- them (no reconnect storm): 40 calls in 2 s cost little CPU.
      local cpu0, t0 = os.clock(), moonrpc.now()
      for i = 1, 40 do
        local who, err = xc:call("Who", {})
        assert.are.equal(1, who, ("call %d during the outage: %s (list: %s)"):format(i, tostring(err), addrs(d)))
        moonrpc.sleep(0.05)
      end
      local cpu, wall = os.clock() - cpu0, (moonrpc.now() - t0) / 1000
      assert.is_true(cpu < 0.25 * wall, ("%.3f s of CPU in %.1f s of outage"):format(cpu, wall))
      assert.are.equal(addr1, addrs(d))

      local addr2, err, reg_err = servers[2]:serve("tcp", "127.0.0.1:0")
      assert(addr2, tostring(err))
      assert.is_truthy(reg_err, "registering while the registry is away reports the error")
      b.up(b.addr)
      back = true
      -- The second server's registration is retried and the watch resyncs.
      local both = table.concat({ addr1, addr2 }, " ")
      if addr2 < addr1 then both = addr2 .. " " .. addr1 end
      assert.is_true(S.eventually(function() return addrs(d) == both end, 12),
                     "the discovery resynced: " .. addrs(d))
      local seen = {}
      for _ = 1, 4 do seen[assert(xc:call("Who", {}))] = true end
      assert.is_true(seen[1] and seen[2], "both instances reached after the resync")
    end)
  end)
end
