--- Spec for moonrpc.log (lua/moonrpc/log.lua, the log sink of
-- lua/src/lserver.c) and the handler errors moonrpc.server logs: a handler
-- that raises is logged on the server with level, service.method, peer and
-- its traceback (file:line), while the caller gets the message; the level
-- is a threshold for Lua's messages and the core's alike.
local moonrpc = require "moonrpc"
local support = require "support"
local socket = require "socket"

local HERE = debug.getinfo(1, "S").short_src

describe("moonrpc.log", function()
  local s, xc, logged
  local raise_line -- the line of the error() below, for the traceback check

  before_each(function()
    logged = {}
    moonrpc.log.level = "info"
    moonrpc.log.sink = function(level, msg) logged[#logged + 1] = { level = level, msg = msg } end
    s = moonrpc.server()
    raise_line = debug.getinfo(1, "l").currentline + 3
    s:register("Arith", {
      Div = function(ctx, args)
        if args.B == 0 then error("divide by zero") end
        return { C = args.A // args.B }
      end,
      Refuse = function() return nil, "not today" end,
      Table = function() error({ message = "tabled" }) end,
    })
    local addr = assert(s:serve("tcp@127.0.0.1:0"))
    xc = moonrpc.xclient("Arith", moonrpc.Failfast, moonrpc.RandomSelect,
                         moonrpc.peer2peer(addr), { timeout = 5 })
  end)

  after_each(function()
    xc:close()
    s:close()
    moonrpc.log.sink = nil
    moonrpc.log.level = "info"
  end)

  it("logs a handler that raised with service.method, peer and traceback; the caller gets the message", function()
    local reply, err = xc:call("Div", { A = 1, B = 0 })
    assert.is_nil(reply)
    assert.equal("EREMOTE", err.code)
    assert.equal("divide by zero", err.message)
    assert.equal(1, #logged)
    local e = logged[1]
    assert.equal("error", e.level)
    assert.truthy(e.msg:find("handler Arith.Div failed", 1, true), e.msg)
    assert.truthy(e.msg:match("%(peer 127%.0%.0%.1:%d+%)"), e.msg)
    assert.truthy(e.msg:find(HERE .. ":" .. raise_line .. ": divide by zero", 1, true), e.msg)
    assert.truthy(e.msg:find("stack traceback:", 1, true), e.msg)
    -- The traceback ends at the handler: none of moonrpc's own frames.
    assert.falsy(e.msg:find("xpcall", 1, true), e.msg)
    assert.falsy(e.msg:find("sched.lua", 1, true), e.msg)
  end)

  it("logs an error table by its message", function()
    local _, err = xc:call("Table", {})
    assert.equal("tabled", err.message)
    assert.equal(1, #logged)
    assert.truthy(logged[1].msg:find("handler Arith.Table failed (peer ", 1, true))
    assert.truthy(logged[1].msg:find(": tabled\nstack traceback:", 1, true), logged[1].msg)
  end)

  it("does not log an error the handler returned, nor a reply", function()
    local _, err = xc:call("Refuse", {})
    assert.equal("not today", err.message)
    assert.equal(7, xc:call("Div", { A = 14, B = 2 }).C)
    assert.same({}, logged)
  end)

  it("drops messages below the level", function()
    moonrpc.log.level = "off"
    assert.equal("divide by zero", select(2, xc:call("Div", { A = 1, B = 0 })).message)
    moonrpc.log.level = "error"
    moonrpc.log.warn("dropped")
    moonrpc.log.error("kept")
    assert.equal(1, #logged)
    assert.same({ level = "error", msg = "kept" }, logged[1])
    assert.is_true(moonrpc.log.enabled("error"))
    assert.is_false(moonrpc.log.enabled("info"))
    assert.equal("error", moonrpc.log.level)
  end)

  it("survives a sink that raises", function()
    moonrpc.log.sink = function() error("sink broke") end
    local _, err = xc:call("Div", { A = 1, B = 0 })
    assert.equal("divide by zero", err.message)
  end)

  it("raises on a misspelled level, a bad sink or an unknown field", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, err = pcall(function() moonrpc.log.level = "warning" end)
    assert.is_false(ok)
    assert.equal(HERE .. ":" .. line
      .. ": moonrpc.log: unknown level 'warning' (debug, info, warn, error, off)", err)
    assert.has_error(function() moonrpc.log.sink = "stderr" end)
    assert.has_error(function() moonrpc.log.levle = "warn" end)
    assert.has_error(function() moonrpc.log.write("off", "x") end)
    assert.equal("info", moonrpc.log.level)
  end)
end)

describe("the default sink and the core's messages", function()
  local function connect_twice(srv)
    -- max_conns is 1: the second connection is refused, and the core logs it.
    local a = assert(support.raw_connect(srv.host, srv.port))
    local b = assert(support.raw_connect(srv.host, srv.port))
    b:settimeout(2)
    b:receive(1) -- closed by the server
    a:close(); b:close()
  end

  local function call_div(srv)
    local xc = moonrpc.xclient("Arith", moonrpc.Failfast, moonrpc.RandomSelect,
                               moonrpc.peer2peer(srv.addr), { timeout = 5 })
    local _, err = xc:call("Div", { A = 1, B = 0 })
    xc:close()
    return err
  end

  it("writes time, level, method, peer and file:line to stderr at level info", function()
    local srv = support.spawn(support.spec_dir .. "/servers/log_server.lua", "info")
    finally(srv.stop)
    assert.equal("divide by zero", call_div(srv).message)
    connect_twice(srv)
    assert.is_true(support.eventually(function()
      return srv.output():find("refusing connections", 1, true) ~= nil
    end, 5), srv.output())
    local out = srv.output()
    assert.truthy(out:match("\n%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d%.%d%d%d %[error%] moonrpc: "
      .. "handler Arith%.Div failed %(peer 127%.0%.0%.1:%d+%): [^\n]*log_server%.lua:10: divide by zero\n"
      .. "stack traceback:\n"), out)
    assert.truthy(out:match("%[warn%] moonrpc: refusing connections: max_conns %(1%) reached"), out)
  end)

  it("honours the level in the core's sink", function()
    local srv = support.spawn(support.spec_dir .. "/servers/log_server.lua", "error")
    finally(srv.stop)
    connect_twice(srv)
    -- Once a call gets through, the refusal is behind us (it would have
    -- been logged first); the handler's error is.
    assert.is_true(support.eventually(function()
      return call_div(srv).message == "divide by zero"
    end, 5))
    assert.is_true(support.eventually(function()
      return srv.output():find("handler Arith.Div failed", 1, true) ~= nil
    end, 5), srv.output())
    assert.falsy(srv.output():find("refusing", 1, true), srv.output())
  end)
end)
