-- spec/regressions_spec.lua: one test per bug found after the fact, each
-- named after the bug it pins (found in review; reproducers first, fixes
-- second).

local moonrpc = require "moonrpc"
local S = require "support"

local function pair(handlers, opts)
  local s = moonrpc.server()
  s:register("S", handlers)
  local addr = assert(s:serve("tcp", "127.0.0.1:0"))
  local xc = moonrpc.xclient("S", moonrpc.Failfast, moonrpc.RandomSelect,
                             moonrpc.multiple_servers{ addr }, opts)
  return s, xc, addr
end

describe("regressions", function()
  it("an auth hook that closes the server does not dispatch the request (use after free)", function()
    local calls = 0
    local s, xc = pair({ Echo = function(_, a) calls = calls + 1; return a end }, { timeout = 1 })
    s:auth(function() s:close(); return true end)
    local r, err = xc:call("Echo", "hi")
    assert.is_nil(r)
    assert.are.equal("ECONNLOST", err.code)
    assert.are.equal(0, calls)
    xc:close()
  end)

  it("xc:close() during a broadcast ends the broadcast and the call with ECLOSED", function()
    local s, xc = pair({ Slow = function() moonrpc.sleep(0.3); return 1 end })
    local got = {}
    moonrpc.spawn(function() got.b = { xc:broadcast("Slow", {}) } end)
    moonrpc.spawn(function() got.c = { xc:call("Slow", {}) } end)
    moonrpc.sleep(0.1)
    xc:close()
    assert.is_true(S.eventually(function() return got.b and got.c end, 2))
    assert.are.equal("ECLOSED", got.b[2].code)
    assert.are.equal("ECLOSED", got.c[2].code)
    s:close()
  end)

  it("a second shutdown fails without stranding the first", function()
    local s, xc = pair({ Slow = function() moonrpc.sleep(0.2); return 1 end })
    local first, second
    moonrpc.spawn(function() xc:call("Slow", {}) end)
    moonrpc.spawn(function() moonrpc.sleep(0.05); first = { s:shutdown(2) } end)
    moonrpc.spawn(function() moonrpc.sleep(0.1); second = { s:shutdown(2) } end)
    assert.is_true(S.eventually(function() return first ~= nil end, 2))
    assert.is_true(first[1])
    assert.is_nil(second[1])
    assert.are.equal("ECLOSED", second[2].code)
    xc:close()
  end)

  it("close() during shutdown() ends the shutdown", function()
    local s, xc = pair({ Slow = function() moonrpc.sleep(0.3); return 1 end })
    local returned
    moonrpc.spawn(function() xc:call("Slow", {}) end)
    moonrpc.spawn(function() moonrpc.sleep(0.05); returned = { s:shutdown(5) } end)
    moonrpc.sleep(0.1)
    s:close()
    assert.is_true(S.eventually(function() return returned ~= nil end, 1))
    assert.is_true(returned[1])
    xc:close()
  end)

  it("a breaker trial that ends without a verdict does not keep the breaker open", function()
    local addr = S.dead_port()
    local port = addr:match(":(%d+)$")
    local xc = moonrpc.xclient("S", moonrpc.Failfast, moonrpc.RandomSelect, moonrpc.peer2peer(addr),
                               { breaker = { failures = 1, window = 0.1 }, timeout = 1 })
    local _, err = xc:call("Echo", {})
    assert.are.equal("ECONNREFUSED", err.code) -- the breaker opens
    local s = moonrpc.server()
    s:register("S", { Echo = function() return "pong" end })
    assert(s:serve("tcp", "127.0.0.1:" .. port))
    moonrpc.sleep(0.3)
    _, err = xc:call("Echo", { f = print }) -- the trial ends with EENCODE
    assert.are.equal("EENCODE", err.code)
    moonrpc.sleep(0.3)
    assert.are.equal("pong", (xc:call("Echo", {})))
    xc:close(); s:close()
  end)

  it("bad arguments to the client binding do not leak what it allocated", function()
    -- Checked for leaks by the ASan run of this spec (lua_regressions_spec_asan);
    -- here: the misuse raises and the client keeps working.
    local s, xc, addr = pair({ Echo = function(_, a) return a end })
    local core = require "moonrpc.core"
    local c = core.client_new(addr, 1)
    for _ = 1, 50 do
      assert.has_error(function() c:call("S", "Echo", 1, 3, { k = "v" }, -1, false, false, 7) end)
      assert.has_error(function() c:call("S", "Echo", 1, 3, { k = "v" }, 1, false, false, "x") end)
      assert.has_error(function() c:ping(1, "x") end)
    end
    c:close()
    assert.are.equal("hi", (xc:call("Echo", "hi")))
    xc:close(); s:close()
  end)

  it("no Lua runs while lua_close finalizes the module (a due timer is dropped)", function()
    local script = [[
      local moonrpc = require "moonrpc"
      moonrpc.spawn(function() moonrpc.sleep(0); io.stdout:write("RESUMED\n") end)
    ]]
    local f = assert(io.popen("lua5.4 -e " .. string.format("%q", script) .. " 2>&1"))
    local out = f:read("a")
    f:close()
    assert.is_nil(out:find("RESUMED", 1, true), out)
    assert.is_nil(out:find("error", 1, true), out)
  end)

  -- libuv caches "now" once per loop turn. Time spent outside the loop (a
  -- blocking os.execute, a REPL waiting for input) used to be charged to
  -- the next call's timeout: the registry outage spec stopped etcd for
  -- 2 s, and the next 2 s call failed at once with ETIMEDOUT.
  it("a call made after blocking outside the loop gets its whole timeout (stale loop time)", function()
    local s, xc = pair({ Echo = function(_, a) return a end }, { timeout = 0.3 })
    assert.are.equal("hi", (xc:call("Echo", "hi")))
    os.execute("sleep 0.5")
    local r, err = xc:call("Echo", "hi")
    assert.are.equal("hi", r, tostring(err))
    xc:close(); s:close()
  end)

  it("a heartbeat sent after blocking outside the loop gets its whole timeout (stale loop time)", function()
    local core, sched = require "moonrpc.core", require "moonrpc.sched"
    local s = moonrpc.server()
    s:register("S", { Echo = function(_, a) return a end })
    local c = assert(core.client_new(assert(s:serve("tcp", "127.0.0.1:0")), sched.id()))
    os.execute("sleep 0.5")
    local f = moonrpc.future()
    local id = sched.expect(function(code) f:set(code) end)
    assert(c:ping(0.3, id)) -- the core counts from the real now, with no core.now() before
    f:wait()
    assert.is_nil(f:get())
    c:close(); s:close()
  end)

  it("moonrpc.sleep after blocking outside the loop sleeps its whole time (stale loop time)", function()
    moonrpc.sleep(0)
    os.execute("sleep 0.3")
    local t0 = require("socket").gettime()
    moonrpc.sleep(0.2)
    assert.is_true(require("socket").gettime() - t0 >= 0.19)
  end)

  -- `moonrpc serve` (and `moonrpc registry`) dropped the watch that
  -- moonrpc.signal returned; once a collection took it, SIGTERM killed the
  -- server instead of shutting it down gracefully (found by faults_spec).
  it("a signal watch nobody keeps still catches its signal after a collection (serve lost SIGTERM)", function()
    local script = [[
      local moonrpc = require "moonrpc"
      local got = false
      moonrpc.signal("SIGUSR1", function() got = true end)
      collectgarbage(); collectgarbage()
      local pid = io.open("/proc/self/stat"):read("n")
      os.execute("kill -USR1 " .. pid)
      moonrpc.sleep(0.2)
      io.write(got and "caught" or "missed")
    ]]
    local p = assert(io.popen("lua5.4 -e '" .. script:gsub("'", "'\\''") .. "' 2>&1"))
    local out = p:read("a")
    local _, how, code = p:close()
    assert.are.same({ "caught", "exit", 0 }, { out, how, code })
  end)

  -- Found by faults_spec (SIGTERM under load): a server in a graceful
  -- shutdown refuses new requests with the error "server is shutting down",
  -- which the xclient took for the service's own error, so Failover did not
  -- retry it and the call failed though the method never ran.
  it("Failover retries elsewhere a call that a shutting-down server refused (graceful shutdown lost calls)", function()
    local function srv(i)
      local s = moonrpc.server()
      s:register("S", { Who = function() return i end,
                        Slow = function() moonrpc.sleep(0.3); return i end })
      return s, assert(s:serve("tcp", "127.0.0.1:0"))
    end
    local s1, a1 = srv(1)
    local s2, a2 = srv(2)
    -- The selector always chooses s1; the xclient takes another server only
    -- when s1 has failed.
    local xc = moonrpc.xclient("S", moonrpc.Failover, function() return a1 end,
                               moonrpc.multiple_servers{ a1, a2 }, { timeout = 2 })
    assert.are.equal(1, (xc:call("Who", {})))
    local slow = xc:go("Slow", {}) -- keeps s1 in its shutdown, connections open
    moonrpc.sleep(0.05)
    local stopped = false
    moonrpc.spawn(function() s1:shutdown(2); stopped = true end)
    local r, err = xc:call("Who", {})
    assert.are.equal(2, r, tostring(err))
    assert.are.equal(1, (slow:wait(2)))
    local deadline = moonrpc.now() + 2000
    while not stopped and moonrpc.now() < deadline do moonrpc.sleep(0.02) end
    assert.is_true(stopped)
    xc:close()
    s2:close()
  end)
end)
