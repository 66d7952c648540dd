--- Spec for moonrpc.server (lua/moonrpc/server.lua, lua/src/lserver.c,
-- core/src/server.c): services as Lua tables, served on loopback TCP and
-- unix sockets, called by an xclient living in the same Lua state and loop.
-- A call at the top level runs the loop; inside moonrpc.spawn it yields.

-- Probe for exactly-once completion: every completion the C side delivers
-- is counted per id before moonrpc.sched sees it. It wraps
-- core.set_dispatchers, so it must be installed before moonrpc loads.
local core = require "moonrpc.core"
local completions_seen, duplicates = {}, {}
local set_dispatchers = core.set_dispatchers
do
  local set = set_dispatchers
  core.set_dispatchers = function(on_req, on_done, on_timer, on_push, ...)
    return set(on_req, function(id, ...)
      completions_seen[id] = (completions_seen[id] or 0) + 1
      if completions_seen[id] > 1 then duplicates[#duplicates + 1] = id end
      return on_done(id, ...)
    end, on_timer, on_push, ...)
  end
end
local moonrpc = require "moonrpc"
local S = require "support"
core.set_dispatchers = set_dispatchers -- the probe is installed; restore

local function serve(opts)
  local s = moonrpc.server(opts)
  return s
end

local function listen(s)
  local addr, err = s:serve("tcp", "127.0.0.1:0")
  assert(addr, tostring(err))
  return addr
end

local function client(addr, service, opts, mode)
  return moonrpc.xclient(service or "Arith", mode or moonrpc.Failfast,
                         moonrpc.RandomSelect, moonrpc.peer2peer(addr), opts)
end

local eventually = S.eventually

local function arith()
  return {
    Mul = function(_, a) return { C = a.A * a.B } end,
    Slow = function(_, a) moonrpc.sleep(a.s); return { slept = a.s } end,
    Fast = function() return { fast = true } end,
  }
end

local function is_conn_error(code)
  return code == "ECONNLOST" or code == "ECLOSED" or code == "ECONNRESET"
      or code == "ECONNREFUSED" or code == "ECONNABORTED" or code == "EPIPE"
end

before_each(function() duplicates = {} end)
after_each(function()
  assert.are.same({}, duplicates, "a call completed more than once")
end)

describe("moonrpc.server", function()
  it("registers a service, serves it on TCP and answers a call", function()
    local s = serve()
    assert.are.equal(s, s:register("Arith", arith(), "weight=10"))
    local addr = listen(s)
    assert.matches("^tcp@127%.0%.0%.1:%d+$", addr)
    assert.is_true(tonumber(addr:match(":(%d+)$")) > 0)
    assert.are.same({ addr }, s:addresses())
    local xc = client(addr)
    local reply, err = xc:call("Mul", { A = 7, B = 8 })
    assert.is_nil(err)
    assert.are.equal(56, reply.C)
    assert.are.equal("integer", math.type(reply.C))
    assert.is_not_nil(next(completions_seen), "the exactly-once probe saw nothing")
    reply = xc:call("Mul", { A = -3, B = 1.5 })
    assert.are.equal(-4.5, reply.C)
    xc:close(); s:close()
  end)

  it("serves on a unix socket", function()
    local path = os.tmpname()
    os.remove(path)
    path = path .. ".sock"
    local s = serve():register("Arith", arith())
    local addr, err = s:serve("unix", path)
    assert.is_nil(err)
    assert.are.equal("unix@" .. path, addr)
    local xc = client(addr)
    local reply = assert(xc:call("Mul", { A = 6, B = 7 }))
    assert.are.equal(42, reply.C)
    xc:close(); s:close()
    os.remove(path)
  end)

  it("accepts one rpcx address string in serve", function()
    local s = serve():register("Arith", arith())
    local addr = assert(s:serve("tcp@127.0.0.1:0"))
    local xc = client(addr)
    assert.are.equal(12, assert(xc:call("Mul", { A = 3, B = 4 })).C)
    xc:close(); s:close()
  end)

  it("returns nil, err when the address is taken", function()
    local s1 = serve():register("Arith", arith())
    local addr = listen(s1)
    local s2 = serve():register("Arith", arith())
    local got, err = s2:serve(addr)
    assert.is_nil(got)
    assert.is_true(moonrpc.is_error(err))
    assert.are.equal("EADDRINUSE", err.code)
    s1:close(); s2:close()
  end)

  it("does not let a slow handler hold up a fast one on the same connection", function()
    local s = serve():register("Arith", arith())
    local xc = client(listen(s))
    local slow = xc:go("Slow", { s = 0.4 })
    local t0 = moonrpc.now()
    local reply = assert(xc:call("Fast", {}))
    assert.is_true(reply.fast)
    assert.is_false(slow:is_ready())
    assert.is_true(moonrpc.now() - t0 < 300)
    assert.are.equal(1, s:stats().conns) -- really the same connection
    local r, err = slow:wait(3)
    assert.is_nil(err)
    assert.are.equal(0.4, r.slept)
    xc:close(); s:close()
  end)

  it("lets a handler call another service (a nested call)", function()
    local s = serve()
    local inner
    s:register("Arith", arith())
    s:register("Outer", {
      MulPlusOne = function(_, a)
        local r, err = inner:call("Mul", a)
        if not r then return nil, err end
        return { C = r.C + 1 }
      end,
    })
    local addr = listen(s)
    inner = client(addr, "Arith")
    local xc = client(addr, "Outer")
    assert.are.equal(57, assert(xc:call("MulPlusOne", { A = 7, B = 8 })).C)
    -- several at once, so that the nested calls interleave
    local calls = {}
    for i = 1, 10 do calls[i] = xc:go("MulPlusOne", { A = i, B = 3 }) end
    for i = 1, 10 do
      local r, err = calls[i]:wait(3)
      assert.is_nil(err)
      assert.are.equal(i * 3 + 1, r.C)
    end
    xc:close(); inner:close(); s:close()
  end)

  describe("error replies", function()
    local s, xc
    before_each(function()
      s = serve():register("E", {
        Raise = function() error("kaboom") end,
        RaiseLevel0 = function() error("plain", 0) end,
        RaiseTable = function() error({ message = "from a table" }) end,
        RaiseError = function() error(moonrpc.error("EFOO", "foo failed")) end,
        NilErr = function() return nil, "bad thing" end,
        Payload = function() return { C = 0 }, "with payload" end,
      })
      xc = client(listen(s), "E")
    end)
    after_each(function() xc:close(); s:close() end)

    it("sends a raised error as an error reply without Lua's position", function()
      local r, err = xc:call("Raise", {})
      assert.is_nil(r)
      assert.are.equal("EREMOTE", err.code)
      assert.are.equal("kaboom", err.message)
      assert.are.equal("EREMOTE: kaboom", tostring(err))
      assert.is_nil(err.payload)
      assert.are.equal("plain", select(2, xc:call("RaiseLevel0", {})).message)
      assert.are.equal("from a table", select(2, xc:call("RaiseTable", {})).message)
      assert.are.equal("foo failed", select(2, xc:call("RaiseError", {})).message)
    end)

    it("sends `return nil, msg` as an error reply", function()
      local r, err = xc:call("NilErr", {})
      assert.is_nil(r)
      assert.are.equal("EREMOTE", err.code)
      assert.are.equal("bad thing", err.message)
      assert.is_nil(err.payload)
    end)

    it("sends `return reply, msg` as an error with the reply as payload", function()
      local r, err = xc:call("Payload", {})
      assert.is_nil(r)
      assert.are.equal("EREMOTE", err.code)
      assert.are.equal("with payload", err.message)
      assert.are.same({ C = 0 }, err.payload)
    end)

    it("names an unknown service and an unknown method as rpcx does", function()
      local r, err = xc:call("Nope", {})
      assert.is_nil(r)
      assert.are.equal("EREMOTE", err.code)
      assert.are.equal("rpcx: can't find method Nope", err.message)
      local other = client(s:addresses()[1], "Missing")
      r, err = other:call("Any", {})
      assert.is_nil(r)
      assert.are.equal("EREMOTE", err.code)
      assert.are.equal("rpcx: can't find service Missing", err.message)
      other:close()
      -- the connection is still good after both
      assert.are.equal("bad thing", select(2, xc:call("NilErr", {})).message)
    end)
  end)

  it("fills the request context", function()
    local s = serve()
    local seen
    s:register("Ctx", {
      Look = function(ctx)
        seen = {
          meta = ctx.meta, remote = ctx.remote, service = ctx.service,
          method = ctx.method, deadline = ctx.deadline, timeout = ctx.timeout,
          remaining = ctx:remaining(), now = moonrpc.now(),
        }
        ctx:set_meta("answer", "42")
        ctx:set_meta("n", 7)
        return { ok = true }
      end,
    })
    local xc = client(listen(s), "Ctx")
    local reply, err, meta = xc:call("Look", {}, { timeout = 2, metadata = { trace = "t-1" } })
    assert.is_nil(err)
    assert.is_true(reply.ok)
    assert.are.equal("t-1", seen.meta.trace)
    -- what is left of the 2 s when the frame goes out (the first call also
    -- dials), as rpcx's time.Until(deadline) sends it
    local sent = tonumber(seen.meta.__ServerTimeout)
    assert.is_true(sent > 1800 and sent <= 2000, tostring(sent))
    assert.matches("^127%.0%.0%.1:%d+$", seen.remote)
    assert.are.equal("Ctx", seen.service)
    assert.are.equal("Look", seen.method)
    assert.are.equal(sent / 1000, seen.timeout)
    assert.is_number(seen.deadline)
    assert.is_true(math.abs(seen.deadline - seen.now - 2000) < 200)
    assert.is_true(seen.remaining > 1.8 and seen.remaining <= 2)
    assert.are.equal("42", meta.answer)
    assert.are.equal("7", meta.n)
    -- without a timeout there is no deadline
    reply, err = xc:call("Look", {})
    assert.is_nil(err)
    assert.is_nil(seen.deadline)
    assert.is_nil(seen.remaining)
    assert.is_nil(seen.meta.__ServerTimeout)
    xc:close(); s:close()
  end)

  it("rejects a bad set_meta and a context used after the reply", function()
    local s = serve()
    local kept, bad
    s:register("Ctx", {
      Bad = function(ctx)
        kept = ctx
        bad = select(2, pcall(ctx.set_meta, ctx, 1, {}))
        return true
      end,
    })
    local xc = client(listen(s), "Ctx")
    assert.is_true(assert(xc:call("Bad", {})))
    assert.matches("set_meta", bad)
    assert.has_error(function() return kept.method end)
    assert.has_error(function() return kept.meta end)
    xc:close(); s:close()
  end)

  describe("auth", function()
    local s, addr, tokens
    before_each(function()
      tokens = {}
      s = serve():register("Arith", arith())
      s:auth(function(ctx, token)
        tokens[#tokens + 1] = token == nil and "" or token
        assert(ctx.method == "Mul")
        if token == "secret" then return true end
        return false, "bad token"
      end)
      addr = listen(s)
    end)
    after_each(function() s:close() end)

    it("accepts a call with the right token", function()
      local xc = client(addr, "Arith", { auth = "secret" })
      assert.are.equal(56, assert(xc:call("Mul", { A = 7, B = 8 })).C)
      assert.are.equal("secret", tokens[1])
      xc:close()
    end)

    it("refuses a wrong or missing token and closes the connection", function()
      for _, opts in ipairs({ { auth = "wrong" }, {} }) do
        local xc = client(addr, "Arith", opts)
        local r, err = xc:call("Mul", { A = 7, B = 8 })
        assert.is_nil(r)
        assert.is_true(moonrpc.is_error(err))
        assert.matches("bad token", err.message)
        assert.is_true(eventually(function() return s:stats().conns == 0 end),
                       "the server kept the refused connection open")
        xc:close()
      end
      assert.are.equal(2, #tokens) -- the hook saw both connections
      assert.are.equal("wrong", tokens[1])
      assert.are.equal("", tokens[2]) -- no __AUTH: an empty token, as rpcx
    end)

    it("rejects a non-function hook", function()
      assert.has_error(function() s:auth("yes") end)
    end)
  end)

  describe("oneway", function()
    it("runs the handler and sends no reply", function()
      local s = serve()
      local seen = {}
      s:register("Note", {
        Put = function(ctx, a) seen[#seen + 1] = { v = a.v, oneway = ctx.oneway }; return { never = true } end,
        Mul = arith().Mul,
      })
      local xc = client(listen(s), "Note")
      assert.is_true(xc:oneshot("Put", { v = 42 }))
      assert.is_true(eventually(function() return #seen == 1 end))
      assert.are.equal(42, seen[1].v)
      assert.is_true(seen[1].oneway)
      assert.are.equal(12, assert(xc:call("Mul", { A = 3, B = 4 })).C)
      xc:close(); s:close()
    end)

    it("does not break the connection when the oneway handler fails", function()
      local s = serve()
      local ran = 0
      s:register("Note", {
        Fail = function() ran = ran + 1; error("oneway failure") end,
        Mul = arith().Mul,
      })
      local xc = client(listen(s), "Note")
      assert.is_true(xc:oneshot("Fail", {}))
      assert.is_true(xc:oneshot("NoSuchMethod", {}))
      assert.is_true(eventually(function() return ran == 1 end))
      local r, err = xc:call("Mul", { A = 5, B = 5 })
      assert.is_nil(err)
      assert.are.equal(25, r.C)
      assert.are.equal(1, s:stats().conns)
      xc:close(); s:close()
    end)
  end)

  it("drains a call in flight on graceful shutdown", function()
    local s = serve():register("Arith", arith())
    local addr = listen(s)
    local xc = client(addr)
    local slow = xc:go("Slow", { s = 0.4 })
    moonrpc.sleep(0.05) -- the request reaches the handler
    assert.are.equal(1, s:stats().inflight)
    local done, ok, serr
    moonrpc.spawn(function()
      ok, serr = s:shutdown(5)
      done = true
    end)
    assert.is_nil(done)
    -- while draining: no new connections, and new calls are refused
    local late = client(addr)
    local r, err = late:call("Mul", { A = 1, B = 2 })
    assert.is_nil(r)
    assert.are.equal("ECONNREFUSED", err.code)
    late:close()
    r, err = xc:call("Mul", { A = 1, B = 2 })
    assert.is_nil(r)
    assert.are.equal("ESHUTDOWN", err.code) -- refused unrun: the fail modes may retry it
    assert.matches("shutting down", err.message)
    -- the call in flight still gets its answer
    r, err = slow:wait(3)
    assert.is_nil(err)
    assert.are.equal(0.4, r.slept)
    assert.is_true(eventually(function() return done end, 3))
    assert.is_true(ok, tostring(serr))
    r, err = xc:call("Mul", { A = 1, B = 2 })
    assert.is_nil(r)
    assert.is_true(is_conn_error(err.code), tostring(err))
    xc:close(); s:close()
  end)

  it("ends a pending call exactly once with a connection error on close", function()
    local s = serve():register("Arith", arith())
    local xc = client(listen(s))
    local slow = xc:go("Slow", { s = 1 })
    moonrpc.sleep(0.05)
    local woke = 0
    moonrpc.spawn(function() slow:wait(); woke = woke + 1 end)
    s:close()
    local r, err = slow:wait(2)
    assert.is_nil(r)
    assert.is_true(moonrpc.is_error(err))
    assert.is_true(is_conn_error(err.code), tostring(err))
    moonrpc.sleep(1.1) -- past the handler's own sleep: nothing more arrives
    assert.are.equal(1, woke)
    local r2, err2 = slow:result()
    assert.is_nil(r2)
    assert.are.equal(err, err2)
    xc:close()
  end)

  it("keeps serving whatever a handler raises", function()
    local s = serve():register("E", {
      Nil = function() error(nil) end,
      Table = function() error({}) end,
      Num = function() error(42) end,
      Mul = arith().Mul,
      -- an error value whose __tostring itself fails
      Evil = function() error(setmetatable({}, { __tostring = function() error("tostring failed") end })) end,
      -- a handler yielding on its own is resumed and answers
      Yield = function() coroutine.yield("mine"); return { resumed = true } end,
    })
    local xc = client(listen(s), "E")
    for _, m in ipairs({ "Nil", "Table", "Num" }) do
      local r, err = xc:call(m, {}, { timeout = 1 })
      assert.is_nil(r)
      assert.are.equal("EREMOTE", err.code, m)
    end
    assert.are.equal("42", select(2, xc:call("Num", {})).message)
    assert.is_true(assert(xc:call("Yield", {}, { timeout = 1 })).resumed)
    local r, err = xc:call("Evil", {}, { timeout = 1 })
    assert.is_nil(r)
    assert.are.equal("EREMOTE", err.code, "a handler's error must become an error reply: " .. tostring(err))
    assert.are.equal(0, s:stats().inflight)
    assert.are.equal(9, assert(xc:call("Mul", { A = 3, B = 3 })).C)
    xc:close(); s:close()
  end)

  it("closes a silent connection after idle_timeout, keeps one that sends heartbeats", function()
    local s = serve{ idle_timeout = 0.3 }
    s:register("Arith", arith())
    local addr = listen(s)
    local quiet = client(addr)
    local beating = client(addr, "Arith", { heartbeat = 0.1 })
    assert.are.equal(56, (quiet:call("Mul", { A = 7, B = 8 })).C)
    assert.are.equal(56, (beating:call("Mul", { A = 7, B = 8 })).C)
    assert.are.equal(2, s:stats().conns)
    eventually(function() return s:stats().conns == 1 end, 2)
    moonrpc.sleep(0.5) -- the heartbeats keep the other one
    assert.are.equal(1, s:stats().conns)
    assert.are.equal(56, (beating:call("Mul", { A = 7, B = 8 })).C)
    -- the closed one reconnects on its next call
    assert.are.equal(56, (quiet:call("Mul", { A = 7, B = 8 })).C)
    assert.has_error(function() moonrpc.server{ idle_timeout = -1 } end)
    quiet:close(); beating:close(); s:close()
  end)

  it("raises on register misuse", function()
    local s = serve()
    assert.has_error(function() s:register(nil, arith()) end)
    assert.has_error(function() s:register("", arith()) end)
    assert.has_error(function() s:register(42, arith()) end)
    assert.has_error(function() s:register("A", "nope") end)
    assert.has_error(function() s:register("A", arith(), 10) end)
    assert.has_error(function() s:register("A", { x = 1 }) end)
    assert.has_error(function() s:register("A", {}) end)
    assert.has_error(function() s:serve(42) end)
    assert.has_error(function() s:serve("no-at-sign") end)
    assert.has_error(function() moonrpc.server("opts") end)
    s:close()
  end)
end)
