--- Spec for moonrpc on luv's loop (moonrpc.use_loop in lua/moonrpc.lua,
-- lua/src/lloop.c's luv_loop and the guard, the host check in
-- lua/moonrpc/sched.lua): luv's timers and sockets and moonrpc's calls
-- interleave in one uv.run(). This process hands luv's loop in before it
-- makes anything; the cases that need a fresh state (use_loop too late,
-- leaving with everything open, no luv at all) are child scripts.
-- Skipped when luv (Debian lua-luv) is not installed. Issue 13.

local S = require "support"

local have_luv, uv = pcall(require, "luv")
if not have_luv then
  describe("moonrpc on a luv loop", function()
    pending("luv is not installed (Debian lua-luv): nothing to share a loop with")
  end)
  return
end

local moonrpc = require "moonrpc"
moonrpc.use_loop(uv) -- before anything else of moonrpc in this process

local LIMIT = 15 -- seconds: a child still running then is a hang

-- Runs `source` as a child script; returns its exit status, stdout, stderr.
local function run_script(source)
  local file, out, err = os.tmpname(), os.tmpname(), os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write(source)
  f:close()
  local p = assert(io.popen(("timeout -s KILL %d lua5.4 %s >%s 2>%s; echo $?"):format(
    LIMIT, S.shell_quote(file), out, err), "r"))
  local rc = tonumber(p:read("l"))
  p:close()
  os.remove(file)
  local function slurp(path)
    local h = io.open(path, "r")
    local s = h and h:read("a") or ""
    if h then h:close() end
    os.remove(path)
    return s
  end
  return rc, slurp(out), slurp(err)
end

-- Runs uv.run() with a watchdog: a luv timer that stops the loop after
-- `seconds`, so a broken case fails instead of hanging.
local function run_luv(seconds)
  local timed_out = false
  local dog = uv.new_timer()
  dog:start(math.floor(seconds * 1000), 0, function() timed_out = true; uv.stop() end)
  dog:unref() -- the watchdog alone does not keep the loop running
  uv.run()
  dog:close()
  uv.run("nowait") -- let the close finish
  assert(not timed_out, "uv.run() did not finish within " .. seconds .. " s")
end

local function arith_server()
  local s = moonrpc.server()
  s:register("Arith", {
    Mul = function(ctx, args) return { C = args.A * args.B } end,
    Slow = function(ctx, args) moonrpc.sleep(args.s); return { ok = true } end,
  })
  return s, assert(s:serve("tcp", "127.0.0.1:0"))
end

local function client(addr)
  return moonrpc.xclient("Arith", moonrpc.Failtry, moonrpc.RandomSelect,
                         moonrpc.peer2peer(addr), { timeout = 10 })
end

describe("moonrpc on a luv loop", function()
  it("shares luv's loop: loop_pointer is luv's, uv.run() runs both", function()
    assert.are.equal(moonrpc.loop_pointer(), require("moonrpc.core").luv_loop(uv))
  end)

  it("fires luv timers while a moonrpc call waits, all from one uv.run()", function()
    local s, addr = arith_server()
    local xc = client(addr)
    local ticks, during, reply, err = 0, nil, nil, nil
    local t = uv.new_timer()
    t:start(20, 20, function() ticks = ticks + 1 end)
    moonrpc.spawn(function()
      local before = ticks
      reply, err = xc:call("Slow", { s = 0.4 }) -- the handler sleeps: the call waits
      during = ticks - before
      t:stop(); t:close()
      xc:close(); s:close()
    end)
    run_luv(10)
    assert.is_nil(err)
    assert.is_true(reply.ok)
    -- 0.4 s at one tick per 20 ms is ~20 ticks; a few prove they interleave.
    assert.is_true(during >= 3, "luv timer ticks while the call waited: " .. tostring(during))
  end)

  it("serves moonrpc and a luv TCP server side by side from one uv.run()", function()
    local s, addr = arith_server()
    -- A luv echo server that answers "pong:" .. what it reads.
    local srv = uv.new_tcp()
    assert(srv:bind("127.0.0.1", 0))
    local port = srv:getsockname().port
    assert(srv:listen(16, function()
      local c = uv.new_tcp()
      srv:accept(c)
      c:read_start(function(e, data)
        if data then c:write("pong:" .. data) else c:close() end
      end)
    end))
    -- Its luv client; and, at the same time, moonrpc calls.
    local luv_reply, rpc_replies = nil, {}
    local cli = uv.new_tcp()
    cli:connect("127.0.0.1", port, function(e)
      assert(not e, e)
      cli:read_start(function(e2, data)
        luv_reply = data
        cli:close()
      end)
      cli:write("ping")
    end)
    moonrpc.spawn(function()
      local xc = client(addr)
      for i = 1, 5 do
        local r = assert(xc:call("Mul", { A = i, B = 10 }))
        rpc_replies[#rpc_replies + 1] = r.C
      end
      xc:close()
      -- Wait (yielding) for the luv side, then shut both servers.
      while not luv_reply do moonrpc.sleep(0.01) end
      s:close()
      srv:close()
    end)
    run_luv(10)
    assert.are.equal("pong:ping", luv_reply)
    assert.are.same({ 10, 20, 30, 40, 50 }, rpc_replies)
  end)

  it("lets a handler wait for a luv callback, and moonrpc.run() run luv's handles", function()
    local s, addr = arith_server()
    s:register("Luv", {
      After = function(ctx, args) -- answers from a luv timer's callback
        local f, fired = moonrpc.future(), nil
        local t = uv.new_timer()
        t:start(args.ms, 0, function() t:close(); fired = args.ms; f:set() end)
        f:wait()
        return { ms = fired }
      end,
    })
    local got
    moonrpc.spawn(function()
      local xc = moonrpc.xclient("Luv", moonrpc.Failtry, moonrpc.RandomSelect,
                                 moonrpc.peer2peer(addr), { timeout = 10 })
      got = assert(xc:call("After", { ms = 30 }))
      xc:close(); s:close()
    end)
    moonrpc.run() -- our run on luv's loop: luv's timer fires inside it too
    assert.are.same({ ms = 30 }, got)
  end)

  it("refuses to block inside a luv callback, with what to do instead", function()
    local s, addr = arith_server()
    local xc = client(addr)
    local ok, msg
    local t = uv.new_timer()
    t:start(0, 0, function()
      t:close()
      ok, msg = pcall(xc.call, xc, "Mul", { A = 1, B = 2 }) -- top level of a luv callback
      xc:close(); s:close()
    end)
    run_luv(10)
    assert.is_false(ok)
    assert.matches("cannot block inside uv.run%(%)", msg)
    assert.matches("moonrpc.spawn", msg)
  end)

  it("raises a clear error when use_loop comes after moonrpc has a loop", function()
    local ok, msg = pcall(function() moonrpc.use_loop(uv) end) -- this process already uses luv's
    assert.is_false(ok)
    assert.matches("use_loop must come before moonrpc creates anything", msg)
    assert.matches("luv_spec.lua", msg) -- the caller's line, not moonrpc's
    local rc, out, err = run_script([[
      local moonrpc = require "moonrpc"
      local s = moonrpc.server() -- makes moonrpc's own loop
      local ok, msg = pcall(moonrpc.use_loop, require "luv")
      print(ok, msg)
      s:close()
    ]])
    assert.are.equal(0, rc, err)
    assert.matches("^false\t.*use_loop must come before moonrpc creates anything", out)
    assert.has_error(function() moonrpc.use_loop({}) end,
      "moonrpc.use_loop: expects the luv module (require \"luv\") or a uv_loop_t * light userdata")
  end)

  it("takes luv's loop after require \"moonrpc\" and leaves it to luv at exit", function()
    -- A server, a client and a pending moonrpc timer are left open when the
    -- script ends: moonrpc closes its handles before luv's loop finalizer
    -- walks the loop (which would take them for luv's own and crash).
    local rc, out, err = run_script([[
      local uv = require "luv"
      local moonrpc = require "moonrpc"
      moonrpc.use_loop(uv)
      local s = moonrpc.server()
      s:register("Arith", { Mul = function(ctx, a) return { C = a.A * a.B } end })
      local addr = assert(s:serve("tcp", "127.0.0.1:0"))
      local xc = moonrpc.xclient("Arith", moonrpc.Failtry, moonrpc.RandomSelect,
                                 moonrpc.peer2peer(addr))
      moonrpc.spawn(function()
        print(xc:call("Mul", { A = 6, B = 7 }).C)
        moonrpc.spawn(function() moonrpc.sleep(100) end)
        uv.stop()
      end)
      uv.run()
      print("bye")
    ]])
    assert.are.equal(0, rc, err)
    assert.are.equal("42\nbye\n", out)
    assert.are.equal("", err)
  end)

  it("runs the README's luv example to its end", function()
    local f = assert(io.open(S.spec_dir .. "/../README.md", "r"))
    local text = f:read("a")
    f:close()
    local block = text:match("## On a luv loop.-```lua\n(.-)```")
    assert(block, "README.md has no Lua block under \"On a luv loop\"")
    local rc, out, err = run_script(block)
    assert.are.equal(0, rc, err)
    assert.matches("42\n", out)
    assert.are.equal("", err)
  end)

  it("changes nothing for a script that does not use luv", function()
    local rc, out, err = run_script([[
      local moonrpc = require "moonrpc"
      local s = moonrpc.server()
      s:register("Arith", { Mul = function(ctx, a) return { C = a.A * a.B } end })
      local addr = assert(s:serve("tcp", "127.0.0.1:0"))
      local xc = moonrpc.xclient("Arith", moonrpc.Failtry, moonrpc.RandomSelect,
                                 moonrpc.peer2peer(addr))
      print(xc:call("Mul", { A = 6, B = 7 }).C, package.loaded.luv)
      xc:close(); s:close()
      moonrpc.run()
    ]])
    assert.are.equal(0, rc, err)
    assert.are.equal("42\tnil\n", out)
  end)
end)
