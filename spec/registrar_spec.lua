-- spec/registrar_spec.lua: third-party registration (moonrpc.registrar and
-- `moonrpc registrar`) against real servers on loopback and a real etcd and
-- Redis (the ctest fixtures in spec/etcd.cmake and spec/redis.cmake): an
-- instance that is up is registered, a killed one is unregistered within
-- interval * fall + timeout, a restarted one comes back, one never up is
-- never registered, stopping unregisters; one heartbeat per interval and
-- no busy loop while instances are down; the command end to end, and its
-- exit code 2 on a bad configuration.

local moonrpc = require "moonrpc"
local registrar = require "moonrpc.registrar"
local socket = require "socket"
local S = require "support"

local ARITH = S.spec_dir .. "/servers/arith_server.lua"
local CLI = S.spec_dir .. "/../scripts/moonrpc"
local INTERVAL, TIMEOUT, FALL = 0.2, 0.2, 2
local NOWHERE = "redis://127.0.0.1:1/none" -- a registry never contacted

local backend_addr = S.backend_addr

local backends = {
  { name = "etcd", addr = backend_addr("MOONRPC_ETCD_DIR") },
  { name = "redis", addr = backend_addr("MOONRPC_REDIS_DIR") },
}

-- Runs a command without the sanitizer preload (etcdctl and redis-cli are
-- not ours) and returns its output.
local function sh(cmd)
  local p = assert(io.popen("env -u LD_PRELOAD " .. cmd .. " 2>&1", "r"))
  local out = p:read("a")
  p:close()
  return out
end

local function config(url, instances, extra)
  local c = { registry = url, interval = INTERVAL, timeout = TIMEOUT, rise = 1, fall = FALL,
              ttl = 5, instances = instances }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

-- The sorted addresses `reg` lists for `service`.
local function listed(reg, service)
  local out = {}
  for _, e in ipairs(assert(reg:list(service))) do out[#out + 1] = e.addr end
  table.sort(out)
  return table.concat(out, " ")
end

-- Runs the loop until pred() holds (checked every 50 ms) or `seconds` pass.
local function poll(pred, seconds)
  local deadline = moonrpc.now() + seconds * 1000
  while not pred() do
    if moonrpc.now() > deadline then return false end
    moonrpc.sleep(0.05)
  end
  return true
end

local function kill9(h)
  os.execute("kill -9 " .. h.pid .. " 2>/dev/null")
  assert(poll(function() return not h.alive() end, 5), "the server survived kill -9")
  h.stop() -- removes its log
end

-- Runs the loop for `seconds`, serving the fake servers given.
local function serve_fakes(seconds, ...)
  local fakes = { ... }
  local deadline = socket.gettime() + seconds
  while socket.gettime() < deadline do
    for _, f in ipairs(fakes) do f.pump() end
    moonrpc.sleep(0.01)
  end
end

local function write_file(text, suffix)
  local path = os.tmpname() .. (suffix or "")
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

-- A hand-made rpcx peer for counting checks: "deaf" accepts and reads but
-- never answers, "slam" accepts and closes at once. pump() serves it from
-- the spec's own loop.
local function fake_server(mode)
  local srv = assert(socket.bind("127.0.0.1", 0))
  srv:settimeout(0)
  local _, port = srv:getsockname()
  local h = { addr = "tcp@127.0.0.1:" .. port, accepts = 0, heartbeats = 0, conns = {} }
  function h.pump()
    while true do
      local c = srv:accept()
      if not c then break end
      h.accepts = h.accepts + 1
      if mode == "slam" then c:close()
      else
        c:settimeout(0)
        h.conns[#h.conns + 1] = { sock = c, buf = "" }
      end
    end
    for _, k in ipairs(h.conns) do
      local data, _, partial = k.sock:receive(4096)
      k.buf = k.buf .. (data or partial or "")
      while #k.buf >= 16 and #k.buf >= 16 + string.unpack(">I4", k.buf, 13) do
        if k.buf:byte(3) & S.FLAG_HEARTBEAT ~= 0 then h.heartbeats = h.heartbeats + 1 end
        k.buf = k.buf:sub(17 + string.unpack(">I4", k.buf, 13))
      end
    end
  end
  function h.close()
    for _, k in ipairs(h.conns) do k.sock:close() end
    srv:close()
  end
  return h
end

describe("registrar configuration", function()
  it("fills in the defaults and normalizes services and metadata", function()
    local c = assert(registrar.check{ registry = NOWHERE, instances = {
      { service = "Arith", addr = "tcp@127.0.0.1:8972", meta = { weight = 10, group = "a b" } },
      { service = { "Arith", "Echo" }, addr = "tcp@127.0.0.1:8973", fall = 5 },
    } })
    local a, b = c.instances[1], c.instances[2]
    assert.are.same({ "Arith" }, a.services)
    assert.are.equal("group=a%20b&weight=10", a.meta)
    assert.are.same({ 2, 1, 1, 2, 10 }, { a.interval, a.timeout, a.rise, a.fall, a.ttl })
    assert.are.same({ "Arith", "Echo" }, b.services)
    assert.are.equal("", b.meta)
    assert.are.equal(5, b.fall)
  end)

  it("names the field at fault", function()
    local good = { service = "Arith", addr = "tcp@127.0.0.1:8972" }
    local cases = {
      { { instances = { good } }, "'registry'" },
      { { registry = NOWHERE }, "'instances'" },
      { { registry = NOWHERE, interval = 0, instances = { good } }, "'interval'" },
      { { registry = NOWHERE, rise = 1.5, instances = { good } }, "'rise'" },
      { { registry = NOWHERE, intervall = 1, instances = { good } }, "unknown field 'intervall'" },
      { { registry = NOWHERE, instances = { good, { service = "A", addr = "127.0.0.1:1" } } },
        "'instances[2].addr'" },
      { { registry = NOWHERE, instances = { { service = { "A", 3 }, addr = "tcp@h:1" } } },
        "'instances[1].service[2]'" },
      { { registry = NOWHERE, instances = { good, good } }, "already listed in instances[1]" },
      { { registry = NOWHERE, instances = { { service = "A", addr = "tcp@h:1", ttl = 0 } } },
        "'instances[1].ttl'" },
    }
    for _, case in ipairs(cases) do
      local ok, msg = registrar.check(case[1])
      assert.is_nil(ok)
      assert.is_truthy(msg:find(case[2], 1, true), msg .. " should mention " .. case[2])
    end
    assert.has_error(function() registrar.new{ registry = NOWHERE } end)
  end)

  it("loads a Lua file and a JSON file of the same shape", function()
    local lua = write_file([[return { registry = "]] .. NOWHERE .. [[", interval = 0.5,
      instances = { { service = { "Arith", "Echo" }, addr = "tcp@127.0.0.1:8972" } } }]], ".lua")
    local json = write_file([[{ "registry": "]] .. NOWHERE .. [[", "interval": 0.5,
      "instances": [ { "service": ["Arith", "Echo"], "addr": "tcp@127.0.0.1:8972" } ] }]], ".json")
    local a, b = assert(registrar.load(lua)), assert(registrar.load(json))
    assert.are.same(assert(registrar.check(a)), assert(registrar.check(b)))
    os.remove(lua)
    os.remove(json)
    local bad = write_file("return {", ".lua")
    assert.is_nil(registrar.load(bad))
    os.remove(bad)
  end)
end)

describe("registrar checks", function()
  it("sends one heartbeat per interval to a silent instance and never registers it", function()
    local deaf, slam = fake_server("deaf"), fake_server("slam")
    local r = assert(registrar.new(config(NOWHERE, {
      { service = "Deaf", addr = deaf.addr }, { service = "Slam", addr = slam.addr },
    }), { log = function() end }))
    r:start()
    serve_fakes(2, deaf, slam)
    for _, st in ipairs(r:status()) do
      assert.are.equal("down", st.state)
      assert.is_false(st.registered)
    end
    r:stop()
    deaf.close()
    slam.close()
    -- 2 s at 0.2 s: 11 checks at most (the first one at once)
    assert.is_true(deaf.heartbeats >= 5 and deaf.heartbeats <= 11, deaf.heartbeats .. " heartbeats")
    assert.are.equal(1, deaf.accepts) -- a timed-out check keeps the connection
    assert.is_true(slam.accepts >= 5 and slam.accepts <= 11, slam.accepts .. " connections")
  end)

  it("spends next to no CPU while an instance refuses connections", function()
    local r = assert(registrar.new(config(NOWHERE, { { service = "Gone", addr = S.dead_port() } }),
                                   { log = function() end }))
    r:start()
    local t0 = os.clock()
    moonrpc.sleep(2)
    local cpu = os.clock() - t0
    assert.are.equal("down", r:status()[1].state)
    r:stop()
    assert.is_true(cpu < 0.25, ("%.3f s of CPU in 2 s"):format(cpu))
  end)
end)

for _, b in ipairs(backends) do
  describe("registrar with " .. b.name, function()
    if S.pending_without(b) then return end

    local base, url, reg, cleanup, lines
    before_each(function()
      base = ("moonrpc_registrar_%d_%d"):format(math.random(1e6), os.time())
      url = ("%s://%s/%s"):format(b.name, b.addr, base)
      reg = assert(moonrpc.registry(url))
      cleanup, lines = {}, {}
    end)
    after_each(function()
      for i = #cleanup, 1, -1 do pcall(cleanup[i]) end
      reg:close()
    end)

    local function new_registrar(instances, extra, registry)
      local r = assert(registrar.new(config(registry or url, instances, extra),
                                     { log = function(l) lines[#lines + 1] = l end }))
      cleanup[#cleanup + 1] = function() r:stop() end
      return r:start()
    end

    -- Waits until `needle` has been logged `n` times (default 1): the
    -- registrar logs once the registry answered, which may come after
    -- another connection already sees the change.
    local function logged(needle, n)
      return poll(function()
        local text, count, at = table.concat(lines, "\n"), 0, 1
        while true do
          local i, j = text:find(needle, at, true)
          if not i then break end
          count, at = count + 1, j + 1
        end
        return count >= (n or 1)
      end, 5)
    end

    local function spawn_arith(port)
      local h = S.spawn(ARITH, port)
      cleanup[#cleanup + 1] = h.stop
      return h
    end

    -- The entry as the backend itself stores it: value and TTL.
    local function raw_entry(service, addr)
      local key = base .. "/" .. service .. "/" .. addr
      if b.name == "etcd" then
        local out = sh(("etcdctl --endpoints %s get --prefix %s/ -w fields"):format(b.addr, base))
        local value = out:match('"Key" : "' .. key:gsub("%p", "%%%0") .. '"\n.-"Value" : "([^"]*)"')
        local lease = tonumber(out:match('"Lease" : (%d+)'))
        local ttl = lease and sh(("etcdctl --endpoints %s lease timetolive %x"):format(b.addr, lease))
        return value, ttl and tonumber(ttl:match("granted with TTL%((%d+)s%)"))
      end
      local host, port = b.addr:match("^(.*):(%d+)$")
      local cli = ("redis-cli -h %s -p %s "):format(host, port)
      local value = sh(cli .. S.shell_quote("GET") .. " " .. S.shell_quote(key)):match("^(.-)\n?$")
      -- rpcx's Redis plugin (libkv) layout: {"Key":..., "Value": base64(meta), ...}
      local b64 = value:match('"Value":"([^"]*)"')
      if b64 then value = S.unbase64(b64) end
      return value ~= "" and value or nil, tonumber(sh(cli .. "TTL " .. S.shell_quote(key)):match("%d+"))
    end

    it("registers an instance that is up, with its metadata and TTL, and never one that is down", function()
      local srv = spawn_arith(0)
      local dead = S.dead_port()
      local r = new_registrar({
        { service = { "Arith", "Echo" }, addr = srv.addr, meta = "weight=10&group=a" },
        { service = "Arith", addr = dead },
      })
      assert.is_true(poll(function() return listed(reg, "Arith") == srv.addr end, 5),
                     "registered: " .. listed(reg, "Arith"))
      assert.is_true(poll(function() return listed(reg, "Echo") == srv.addr end, 5))
      assert.are.equal("weight=10&group=a", assert(reg:list("Arith"))[1].metadata)
      local value, ttl = raw_entry("Arith", srv.addr)
      assert.are.equal("weight=10&group=a", value)
      assert.is_true(ttl ~= nil and ttl >= 1 and ttl <= 5, "TTL " .. tostring(ttl))
      moonrpc.sleep(INTERVAL * (FALL + 3)) -- the dead one has failed several checks by now
      assert.are.equal(srv.addr, listed(reg, "Arith"))
      local st = r:status()
      assert.are.same({ "up", true }, { st[1].state, st[1].registered })
      assert.are.same({ "down", false }, { st[3].state, st[3].registered })
      local text = table.concat(lines, "\n")
      assert.is_true(logged("registrar: Arith " .. srv.addr .. " up, registered"), text)
      assert.is_true(logged("registrar: Arith " .. dead .. " down (ECONNREFUSED"), text)
    end)

    it("unregisters a killed instance within interval * fall + timeout, and re-registers it when it is back", function()
      local srv = spawn_arith(0)
      new_registrar({ { service = "Arith", addr = srv.addr } })
      assert.is_true(poll(function() return listed(reg, "Arith") == srv.addr end, 5))
      local t0 = moonrpc.now()
      kill9(srv)
      assert.is_true(poll(function() return listed(reg, "Arith") == "" end, 5), "still listed")
      local took = (moonrpc.now() - t0) / 1000
      -- the bound, plus one poll and a registry round trip under load
      assert.is_true(took < INTERVAL * FALL + TIMEOUT + 1, ("unregistered after %.2f s"):format(took))
      local again = spawn_arith(srv.port)
      assert.are.equal(srv.addr, again.addr)
      assert.is_true(poll(function() return listed(reg, "Arith") == srv.addr end, 5), "not back")
      assert.is_true(logged("registrar: Arith " .. srv.addr .. " down ("), table.concat(lines, "\n"))
      assert.is_true(logged("), unregistered"), table.concat(lines, "\n"))
      assert.is_true(logged("up, registered", 2), table.concat(lines, "\n"))
    end)

    it("unregisters what it registered when stopped, and leaves a registry it was given open", function()
      local srv = spawn_arith(0)
      local r = new_registrar({ { service = { "Arith", "Echo" }, addr = srv.addr } }, nil, reg)
      assert.is_true(poll(function() return listed(reg, "Echo") == srv.addr end, 5))
      r:stop()
      assert.are.equal("", listed(reg, "Arith")) -- reg is still open: list works
      assert.are.equal("", listed(reg, "Echo"))
      assert.is_truthy(table.concat(lines, "\n"):find("unregistered (registrar stopping)", 1, true))
      r:stop() -- twice is fine
    end)

    it("runs as `moonrpc registrar --config FILE` until SIGTERM, then unregisters and exits 0", function()
      local srv = spawn_arith(0)
      -- etcd reads a Lua file, Redis a JSON one; --registry overrides the file's.
      local path = b.name == "etcd"
        and write_file(("return { registry = %q, interval = 0.2, timeout = 0.2, instances = {\n" ..
                        "  { service = 'Arith', addr = %q, meta = 'weight=3' } } }\n"):format(NOWHERE, srv.addr), ".lua")
        or write_file(('{ "registry": "%s", "interval": 0.2, "timeout": 0.2, "instances": [\n' ..
                       '  { "service": "Arith", "addr": "%s", "meta": "weight=3" } ] }\n'):format(NOWHERE, srv.addr), ".json")
      local log, rc = os.tmpname(), os.tmpname()
      os.remove(rc)
      -- The child loads the same core module as this spec (plain or ASan):
      -- MOONRPC_BUILD names a directory whose lib/ is that module's.
      local so = assert(package.searchpath("moonrpc.core", package.cpath))
      local build = os.tmpname()
      os.remove(build)
      os.execute(("mkdir %s && ln -s %s %s/lib"):format(S.shell_quote(build),
        S.shell_quote(so:match("^(.*)/moonrpc/core%.so$")), S.shell_quote(build)))
      local cmd = ("(MOONRPC_BUILD=%s lua5.4 %s registrar --config %s --registry %s >%s 2>&1 & " ..
                   "echo $!; exec >/dev/null; wait $!; echo $? >%s) &"):format(
        S.shell_quote(build), S.shell_quote(CLI), S.shell_quote(path), S.shell_quote(url),
        S.shell_quote(log), S.shell_quote(rc))
      local p = assert(io.popen(cmd, "r"))
      local pid = assert(tonumber(p:read("l")))
      p:close()
      cleanup[#cleanup + 1] = function()
        os.execute("kill -KILL " .. pid .. " 2>/dev/null")
        os.execute("rm -rf " .. S.shell_quote(build))
        os.remove(path); os.remove(log); os.remove(rc)
      end
      assert.is_true(poll(function() return listed(reg, "Arith") == srv.addr end, 10),
                     "not registered; the command says:\n" .. (S.read_all(log) or ""))
      assert.are.equal("weight=3", assert(reg:list("Arith"))[1].metadata)
      os.execute("kill -TERM " .. pid)
      assert.is_true(poll(function() return (S.read_all(rc) or ""):match("%d+\n") ~= nil end, 10),
                     "the command did not exit")
      local out = S.read_all(log)
      assert.are.equal("0", S.read_all(rc):match("%d+"), out)
      assert.are.equal("", listed(reg, "Arith"))
      assert.is_truthy(out:find("registrar: Arith " .. srv.addr .. " up, registered", 1, true), out)
      assert.is_truthy(out:find("SIGTERM", 1, true), out)
      assert.is_truthy(out:find("unregistered (registrar stopping)", 1, true), out)
    end)
  end)
end

describe("moonrpc registrar", function()
  local function run(args)
    local p = assert(io.popen(("lua5.4 %s registrar %s 2>&1; echo \"rc=$?\""):format(S.shell_quote(CLI), args)))
    local out = p:read("a")
    p:close()
    return tonumber(out:match("rc=(%d+)\n$")), out
  end

  it("exits 2 with a message naming the field on a bad configuration", function()
    local bad = write_file(("return { registry = %q, instances = { { service = 'Arith', addr = 'localhost' } } }")
                           :format(NOWHERE), ".lua")
    local code, out = run("--config " .. S.shell_quote(bad))
    assert.are.equal(2, code, out)
    assert.is_truthy(out:find("instances[1].addr", 1, true), out)
    os.remove(bad)
    code, out = run("--config /nonexistent/registrar.lua")
    assert.are.equal(2, code, out)
    code, out = run("")
    assert.are.equal(2, code, out)
    assert.is_truthy(out:find("--config FILE is required", 1, true), out)
    code, out = run("--help")
    assert.are.equal(0, code, out)
    assert.is_truthy(out:find("example:", 1, true), out)
  end)
end)
