--- Spec for moonrpc.xclient and its calls (lua/moonrpc/xclient.lua,
-- lua/moonrpc/sched.lua, lua/src/lclient.c, core/src/client.c): go() and
-- its call object, timeouts, cancel, fail modes, lost connections,
-- heartbeats, serialize and compress options, and the scheduler.
-- Servers run in this Lua state, except those a test must kill or stop:
-- those are child processes running spec/servers/arith_server.lua.

-- Probe for exactly-once completion (see server_spec.lua): counts each
-- completion the C side delivers, per id, before moonrpc.sched sees it.
local core = require "moonrpc.core"
local completions_seen, duplicates = {}, {}
local set_dispatchers = core.set_dispatchers
core.set_dispatchers = function(on_req, on_done, on_timer, on_push, ...)
  return set_dispatchers(on_req, function(id, ...)
    completions_seen[id] = (completions_seen[id] or 0) + 1
    if completions_seen[id] > 1 then duplicates[#duplicates + 1] = id end
    return on_done(id, ...)
  end, on_timer, on_push, ...)
end
local moonrpc = require "moonrpc"
local S = require "support"
core.set_dispatchers = set_dispatchers

local here = debug.getinfo(1, "S").source:match("^@(.*)$"):match("^(.*)/[^/]*$") or "."
local SERVER_SCRIPT = here .. "/servers/arith_server.lua"

-- A child process serving Arith (Mul, Slow, Echo) on 127.0.0.1:port.
local function start_child(port)
  local p = assert(io.popen(string.format(
    "echo $$; exec lua5.4 '%s' %d", SERVER_SCRIPT, port or 0), "r"))
  local pid = tonumber(p:read("l"))
  local line = p:read("l") or "(child wrote nothing)"
  local addr = line:match("^listening on (.+)$")
  if not (pid and addr) then
    if pid then os.execute("kill -9 " .. pid .. " 2>/dev/null") end
    p:close()
    error("child server did not start: " .. line)
  end
  return { pid = pid, pipe = p, addr = addr }
end

local function signal(child, sig)
  os.execute(string.format("kill -%s %d 2>/dev/null", sig, child.pid))
end

local function reap(child)
  if child.pipe then
    signal(child, "KILL")
    child.pipe:close()
    child.pipe = nil
  end
end

local function arith(extra)
  local t = {
    Mul = function(_, a) return { C = a.A * a.B } end,
    Slow = function(_, a) moonrpc.sleep(a.s); return { slept = a.s } end,
    Echo = function(_, a) return a end,
  }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local function local_server(extra, opts)
  local s = moonrpc.server(opts)
  s:register("Arith", arith(extra))
  local addr = assert(s:serve("tcp", "127.0.0.1:0"))
  return s, addr
end

local function client(addr, opts, mode)
  return moonrpc.xclient("Arith", mode or moonrpc.Failfast, moonrpc.RandomSelect,
                         moonrpc.peer2peer(addr), opts)
end

local dead_port = S.dead_port

local eventually = S.eventually

before_each(function() duplicates = {} end)
after_each(function()
  assert.are.same({}, duplicates, "a call completed more than once")
end)

describe("xclient calls", function()
  it("runs the loop for a call at the top level and yields inside spawn", function()
    local s, addr = local_server()
    local xc = client(addr)
    assert.are.equal(56, assert(xc:call("Mul", { A = 7, B = 8 })).C)
    assert.is_not_nil(next(completions_seen), "the exactly-once probe saw nothing")
    local got
    moonrpc.spawn(function() got = assert(xc:call("Mul", { A = 2, B = 5 })).C end)
    assert.is_nil(got) -- spawn returned at the call's wait
    assert.is_true(eventually(function() return got ~= nil end))
    assert.are.equal(10, got)
    xc:close(); s:close()
  end)

  it("keeps many calls in flight from several coroutines", function()
    local running, most_in_flight = 0, 0
    local s, addr = local_server({
      MulLater = function(_, a)
        running = running + 1
        most_in_flight = math.max(most_in_flight, running)
        moonrpc.sleep(a.d)
        running = running - 1
        return { C = a.A * a.B }
      end,
    })
    local xc = client(addr)
    local finished, wrong, total = 0, {}, 0
    for co = 1, 5 do
      moonrpc.spawn(function()
        local calls = {}
        for i = 1, 20 do
          calls[i] = xc:go("MulLater", { A = co, B = i, d = (i % 4) * 0.01 })
        end
        for i = 1, 20 do
          local r, err = calls[i]:wait(5)
          total = total + 1
          if err or r.C ~= co * i then wrong[#wrong + 1] = { co, i, tostring(err), r and r.C } end
        end
        finished = finished + 1
      end)
    end
    assert.is_true(eventually(function() return finished == 5 end, 10))
    assert.are.equal(100, total)
    assert.are.same({}, wrong)
    assert.is_true(most_in_flight > 20, "the calls barely overlapped: " .. most_in_flight)
    xc:close(); s:close()
  end)

  it("returns ETIMEDOUT from wait(timeout) while the call goes on", function()
    local s, addr = local_server()
    local xc = client(addr)
    local call = xc:go("Slow", { s = 0.3 })
    local r, err = call:wait(0.05)
    assert.is_nil(r)
    assert.are.equal("ETIMEDOUT", err.code)
    assert.is_false(call:is_ready())
    r, err = call:wait(2)
    assert.is_nil(err)
    assert.are.equal(0.3, r.slept)
    -- the same inside a coroutine
    local inner = {}
    moonrpc.spawn(function()
      local c = xc:go("Slow", { s = 0.2 })
      inner.first = select(2, c:wait(0.02))
      inner.reply = c:wait(2)
    end)
    assert.is_true(eventually(function() return inner.reply ~= nil end))
    assert.are.equal("ETIMEDOUT", inner.first.code)
    assert.are.equal(0.2, inner.reply.slept)
    xc:close(); s:close()
  end)

  it("reports readiness with is_ready and result", function()
    local s, addr = local_server()
    local xc = client(addr)
    local call = xc:go("Slow", { s = 0.1 })
    assert.is_false(call:is_ready())
    local r, err = call:result()
    assert.is_nil(r)
    assert.are.equal("EPENDING", err.code)
    assert.is_true(eventually(function() return call:is_ready() end))
    r, err = call:result()
    assert.is_nil(err)
    assert.are.equal(0.1, r.slept)
    local r2 = call:wait() -- waiting again returns the same result
    assert.are.equal(r, r2)
    xc:close(); s:close()
  end)

  it("ends a discarded call once with ECANCELED and ignores the late reply", function()
    local ran = 0
    local s, addr = local_server({
      SlowCount = function(_, a) moonrpc.sleep(a.s); ran = ran + 1; return { late = true } end,
    })
    local xc = client(addr)
    local call = xc:go("SlowCount", { s = 0.15 })
    local woke, seen = 0, nil
    moonrpc.spawn(function() seen = select(2, call:wait()); woke = woke + 1 end)
    moonrpc.sleep(0.03)
    assert.is_true(call:discard())
    assert.is_false(call:discard())
    assert.is_true(call:is_ready())
    local r, err = call:result()
    assert.is_nil(r)
    assert.are.equal("ECANCELED", err.code)
    assert.is_true(eventually(function() return ran == 1 end)) -- the server answered
    moonrpc.sleep(0.05)
    r, err = call:wait()
    assert.is_nil(r)
    assert.are.equal("ECANCELED", err.code)
    assert.are.equal(1, woke)
    assert.are.equal("ECANCELED", seen.code)
    -- the connection is fine afterwards
    assert.are.equal(6, assert(xc:call("Mul", { A = 2, B = 3 })).C)
    xc:close(); s:close()
  end)

  it("times a call out with ETIMEDOUT and sends __ServerTimeout", function()
    local seen = {}
    local s, addr = local_server({
      Timeout = function(ctx) return { t = ctx.timeout, meta = ctx.meta.__ServerTimeout } end,
      SlowSeen = function(ctx, a)
        seen.timeout = ctx.timeout
        seen.meta = ctx.meta.__ServerTimeout
        moonrpc.sleep(a.s)
        return { slept = a.s }
      end,
    })
    local xc = client(addr)
    local r = assert(xc:call("Timeout", {}, { timeout = 0.5 }))
    -- the budget left when the frame goes out (the first call also dials)
    assert.is_true(r.t > 0.45 and r.t <= 0.5, tostring(r.t))
    assert.are.equal(math.floor(r.t * 1000 + 0.5), tonumber(r.meta))
    local t0 = moonrpc.now()
    local reply, err = xc:call("SlowSeen", { s = 0.5 }, { timeout = 0.1 })
    local took = moonrpc.now() - t0
    assert.is_nil(reply)
    assert.are.equal("ETIMEDOUT", err.code)
    assert.is_true(took >= 90 and took < 400, "took " .. took .. " ms")
    assert.is_true(seen.timeout > 0.08 and seen.timeout <= 0.1, tostring(seen.timeout))
    assert.are.equal(math.floor(seen.timeout * 1000 + 0.5), tonumber(seen.meta))
    -- the xclient's default timeout applies as well
    local xt = client(addr, { timeout = 0.1 })
    reply, err = xt:call("Slow", { s = 0.5 })
    assert.is_nil(reply)
    assert.are.equal("ETIMEDOUT", err.code)
    moonrpc.sleep(0.45) -- let the late replies arrive and be dropped
    assert.are.equal(12, assert(xc:call("Mul", { A = 3, B = 4 })).C)
    xt:close(); xc:close(); s:close()
  end)

  describe("connection refused", function()
    it("fails at once with Failfast", function()
      local xc = client(dead_port(), nil, moonrpc.Failfast)
      local call = xc:go("Mul", { A = 1, B = 1 })
      local r, err = call:wait(2)
      assert.is_nil(r)
      assert.are.equal("ECONNREFUSED", err.code)
      assert.are.equal(1, call.tries)
      xc:close()
    end)

    it("retries with Failtry, then fails", function()
      local xc = client(dead_port(), { retries = 2 }, moonrpc.Failtry)
      local call = xc:go("Mul", { A = 1, B = 1 })
      local r, err = call:wait(2)
      assert.is_nil(r)
      assert.are.equal("ECONNREFUSED", err.code)
      assert.are.equal(3, call.tries) -- the first try and two retries
      r, err = xc:call("Mul", { A = 1, B = 1 })
      assert.is_nil(r)
      assert.are.equal("ECONNREFUSED", err.code)
      xc:close()
    end)

    it("moves to another server with Failover", function()
      local s, addr = local_server()
      local d = moonrpc.multiple_servers({ dead_port(), addr })
      local xc = moonrpc.xclient("Arith", moonrpc.Failover, moonrpc.RoundRobin, d)
      for i = 1, 4 do
        local r, err = xc:call("Mul", { A = i, B = 2 })
        assert.is_nil(err)
        assert.are.equal(i * 2, r.C)
      end
      xc:close(); s:close()
    end)
  end)

  it("ends a pending call once with ECONNLOST when the server is killed, then reconnects", function()
    local child = start_child()
    local ok, e = pcall(function()
      local xc = client(child.addr)
      assert.are.equal(56, assert(xc:call("Mul", { A = 7, B = 8 })).C)
      local call = xc:go("Slow", { s = 5 })
      local woke = 0
      moonrpc.spawn(function() call:wait(); woke = woke + 1 end)
      moonrpc.sleep(0.1)
      assert.is_false(call:is_ready())
      signal(child, "KILL")
      local t0 = moonrpc.now()
      local r, err = call:wait(2)
      assert.is_nil(r)
      assert.is_true(moonrpc.is_error(err))
      assert.are.equal("ECONNLOST", err.code)
      assert.is_true(moonrpc.now() - t0 < 1000)
      reap(child)
      moonrpc.sleep(0.05)
      assert.are.equal(1, woke)
      -- a new server on the same port: the next call reconnects
      local port = tonumber(child.addr:match(":(%d+)$"))
      child = start_child(port)
      assert.are.equal(child.addr, xc.discovery:get()[1].addr)
      r, err = xc:call("Mul", { A = 6, B = 7 })
      assert.is_nil(err)
      assert.are.equal(42, r.C)
      xc:close()
    end)
    reap(child)
    assert(ok, e)
  end)

  it("ends pending calls with EHEARTBEAT when the peer stops answering", function()
    local child = start_child()
    local ok, e = pcall(function()
      local xc = client(child.addr, { heartbeat = 0.1, heartbeat_timeout = 0.2 })
      local call = xc:go("Slow", { s = 5 })
      moonrpc.sleep(0.5) -- several heartbeats answered: the call goes on
      assert.is_false(call:is_ready(), "a live peer's heartbeats failed: " .. tostring(select(2, call:result())))
      signal(child, "STOP")
      local t0 = moonrpc.now()
      local r, err = call:wait(3)
      local took = moonrpc.now() - t0
      assert.is_nil(r)
      assert.is_true(moonrpc.is_error(err))
      assert.is_true(err.code == "EHEARTBEAT" or err.code == "ECONNLOST", tostring(err))
      assert.is_true(took < 1000, "took " .. took .. " ms")
      xc:close()
    end)
    signal(child, "CONT")
    signal(child, "TERM")
    reap(child)
    assert(ok, e)
  end)

  describe("serialize and compress", function()
    local s, addr, xc, seen
    before_each(function()
      seen = {}
      s, addr = local_server({
        EchoSer = function(ctx, a) seen.serialize = ctx.serialize; return a end,
      })
      xc = client(addr)
    end)
    after_each(function() xc:close(); s:close() end)

    it("round-trips msgpack, json and raw", function()
      local v = { name = "moon", n = 3, list = { 1, 2.5, "x" }, ok = true }
      for _, ser in ipairs({ "msgpack", "json" }) do
        local r, err = xc:call("EchoSer", v, { serialize = ser })
        assert.is_nil(err)
        assert.are.same(v, r)
        assert.are.equal(ser, seen.serialize)
      end
      local raw = "\0raw\255bytes\n"
      local r, err = xc:call("EchoSer", raw, { serialize = "raw" })
      assert.is_nil(err)
      assert.are.equal(raw, r)
      assert.are.equal("raw", seen.serialize)
      -- as an xclient default
      local xj = client(addr, { serialize = "json" })
      assert.are.same(v, assert(xj:call("EchoSer", v)))
      assert.are.equal("json", seen.serialize)
      xj:close()
    end)

    it("round-trips gzip-compressed payloads, large and small", function()
      local big = {}
      for i = 1, 500 do big[i] = string.format("%09d", i) end
      local big_s = table.concat(big, ",")
      assert.is_true(#big_s >= 4999)
      local small = string.rep("abcd", 25)
      for _, payload in ipairs({ big_s, small }) do
        local r, err = xc:call("EchoSer", { p = payload }, { compress = "gzip" })
        assert.is_nil(err)
        assert.are.equal(payload, r.p)
        r, err = xc:call("EchoSer", payload, { compress = "gzip", serialize = "raw" })
        assert.is_nil(err)
        assert.are.equal(payload, r)
      end
      local xg = client(addr, { compress = "gzip", serialize = "json" })
      assert.are.same({ p = big_s }, assert(xg:call("EchoSer", { p = big_s })))
      xg:close()
    end)
  end)

  it("runs moonrpc.sleep at the top level and in coroutines", function()
    local t0 = moonrpc.now()
    moonrpc.sleep(0.1)
    local took = moonrpc.now() - t0
    assert.is_true(took >= 95 and took < 400, "took " .. took)
    local done = {}
    t0 = moonrpc.now()
    for i = 1, 3 do
      moonrpc.spawn(function() moonrpc.sleep(0.1 * i); done[#done + 1] = i end)
    end
    assert.are.same({}, done) -- spawn returns at the first wait
    assert.is_true(eventually(function() return #done == 3 end))
    took = moonrpc.now() - t0
    assert.are.same({ 1, 2, 3 }, done)
    assert.is_true(took >= 295 and took < 550, "the sleeps did not overlap: " .. took)
    -- users' own coroutines keep working around ours
    local gen = coroutine.wrap(function() coroutine.yield(1); coroutine.yield(2) end)
    local got
    moonrpc.spawn(function() local a = gen(); moonrpc.sleep(0.01); got = a + gen() end)
    assert.is_true(eventually(function() return got ~= nil end))
    assert.are.equal(3, got)
  end)

  it("runs a moonrpc.signal function in a coroutine each time the signal comes", function()
    local f = assert(io.open("/proc/self/stat"))
    local pid = assert(tonumber(f:read("a"):match("^(%d+)")))
    f:close()
    local got = {}
    local w = assert(moonrpc.signal("SIGUSR1", function(name)
      moonrpc.sleep(0.01) -- it may wait
      got[#got + 1] = name
    end))
    for n = 1, 2 do
      os.execute("kill -USR1 " .. pid)
      assert.is_true(eventually(function() return #got == n end))
    end
    assert.are.same({ "SIGUSR1", "SIGUSR1" }, got)
    w.stop() -- the default action is back: no more SIGUSR1 here
    assert.has_error(function() moonrpc.signal("SIGNOPE", function() end) end)
    assert.has_error(function() moonrpc.signal("SIGUSR2") end)
  end)

  it("raises on misuse", function()
    local d = moonrpc.peer2peer("tcp@127.0.0.1:1")
    local xc = moonrpc.xclient("Arith", moonrpc.Failfast, moonrpc.RandomSelect, d)
    assert.has_error(function() xc:call(42) end)
    assert.has_error(function() xc:go(42) end)
    assert.has_error(function() xc:oneshot(nil) end)
    assert.has_error(function() xc:call("Mul", {}, "opts") end)
    assert.has_error(function() xc:call("Mul", {}, { serialize = "xml" }) end)
    assert.has_error(function() xc:call("Mul", {}, { timeout = -1 }) end)
    assert.has_error(function() xc:call("Mul", {}, { timeout = "soon" }) end)
    assert.has_error(function() moonrpc.xclient("Arith", nil, nil, d, { serialize = "yaml" }) end)
    assert.has_error(function() moonrpc.xclient("Arith", moonrpc.Failfast, nil, "tcp@127.0.0.1:1") end)
    assert.has_error(function() moonrpc.xclient("Arith", moonrpc.Failfast, nil, {}) end)
    assert.has_error(function() moonrpc.xclient("Arith", "Failsometimes", nil, d) end)
    assert.has_error(function() moonrpc.xclient("Arith", nil, "Psychic", d) end)
    assert.has_error(function() moonrpc.xclient(42, nil, nil, d) end)
    assert.has_error(function() moonrpc.peer2peer(42) end)
    assert.has_error(function() moonrpc.multiple_servers("x") end)
    assert.has_error(function() moonrpc.multiple_servers({ 42 }) end)
    assert.has_error(function() moonrpc.spawn("not a function") end)
    xc:close()
  end)
end)
