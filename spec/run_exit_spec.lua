--- Spec for when moonrpc.run() returns (lua/moonrpc/sched.lua,
-- core/src/client/client.c's handle refs, lua/src/lclient.c): it returns
-- once no coroutine waits and no server listens; an idle xclient
-- connection does not keep the loop running, a pending call does.
-- Each case is a child script (`lua5.4 FILE ADDR`) against a child server:
-- the child must exit by itself, with nothing on stderr. Issue 14.

local S = require "support"
local socket = require "socket"

local README = S.spec_dir .. "/../README.md"
local LIMIT = 10 -- seconds: a child still running then is a hang

-- Runs `source` as a script with the server's address as arg[1]. Returns
-- its exit status, stdout, stderr and wall time.
local function run_script(source, addr)
  local file, out, err = os.tmpname(), os.tmpname(), os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write(source)
  f:close()
  local t0 = socket.gettime()
  local cmd = ("timeout -s KILL %d lua5.4 %s %s >%s 2>%s; echo $?"):format(
    LIMIT, S.shell_quote(file), S.shell_quote(addr), out, err)
  local p = assert(io.popen(cmd, "r"))
  local rc = tonumber(p:read("l"))
  p:close()
  local secs = socket.gettime() - t0
  local function slurp(path)
    local h = io.open(path, "r")
    local s = h and h:read("a") or ""
    if h then h:close() end
    os.remove(path)
    return s
  end
  os.remove(file)
  return rc, slurp(out), slurp(err), secs
end

local function exits_cleanly(rc, out, err, secs)
  assert(rc ~= 137, ("the script did not exit by itself within %d s; stdout:\n%s\nstderr:\n%s")
    :format(LIMIT, out, err))
  assert.are.equal("", err)
  assert.are.equal(0, rc)
  assert.is_true(secs < LIMIT)
end

local PRELUDE = [[
local moonrpc = require "moonrpc"
local xc = moonrpc.xclient("Arith", moonrpc.Failtry, moonrpc.RandomSelect,
                           moonrpc.peer2peer(arg[1]), OPTS)
]]

local function script(body, opts)
  return PRELUDE:gsub("OPTS", opts or "{ timeout = 5 }") .. body
end

-- The Lua code blocks of the README, in order.
local function readme_blocks()
  local f = assert(io.open(README, "r"))
  local text = f:read("a")
  f:close()
  local blocks = {}
  for code in text:gmatch("\n```lua\n(.-)\n```") do blocks[#blocks + 1] = code end
  return blocks
end

describe("moonrpc.run()", function()
  local server
  setup(function() server = S.spawn(S.spec_dir .. "/servers/arith_server.lua") end)
  teardown(function() server.stop() end)

  it("returns after one sync call at top level: the idle connection does not keep it running", function()
    local rc, out, err, secs = run_script(script [[
print(xc:call("Mul", { A = 6, B = 7 }).C)
moonrpc.run()
print("run returned")
]], server.addr)
    exits_cleanly(rc, out, err, secs)
    assert.are.equal("42\nrun returned\n", out)
  end)

  it("runs the README's spawn example to its end and returns", function()
    local block
    for _, b in ipairs(readme_blocks()) do
      if b:find("moonrpc.spawn(function()", 1, true) and b:find("moonrpc.run()", 1, true) then
        block = b
        break
      end
    end
    assert(block, "README.md has no block with moonrpc.spawn and moonrpc.run")
    local rc, out, err, secs = run_script(script(block), server.addr)
    exits_cleanly(rc, out, err, secs)
    local lines = {}
    for i, c in out:gmatch("(%d+)\t(%d+)\n") do lines[tonumber(i)] = tonumber(c) end
    for i = 1, 10 do assert.are.equal(i * i, lines[i]) end
  end)

  it("keeps running while a call is pending, then returns", function()
    local rc, out, err, secs = run_script(script [[
xc:call("Mul", { A = 1, B = 1 }) -- connected and idle
moonrpc.spawn(function()
  local r, e = xc:call("Slow", { s = 0.3 })
  print(r and r.slept or tostring(e))
end)
moonrpc.run()
print("run returned")
]], server.addr)
    exits_cleanly(rc, out, err, secs)
    assert.are.equal("0.3\nrun returned\n", out)
  end)

  it("returns with heartbeats on: they do not count as waiting", function()
    local rc, out, err, secs = run_script(script([[
print(xc:call("Mul", { A = 2, B = 3 }).C)
moonrpc.run()
]], "{ timeout = 5, heartbeat = 0.05, heartbeat_timeout = 1 }"), server.addr)
    exits_cleanly(rc, out, err, secs)
    assert.are.equal("6\n", out)
  end)

  it("an xclient closed from the coroutine the last reply resumed prints no error", function()
    for _, mode in ipairs { "Failtry", "Failover", "Failfast", "Failbackup" } do
      local rc, out, err, secs = run_script([[
local moonrpc = require "moonrpc"
local xc = moonrpc.xclient("Arith", moonrpc.]] .. mode .. [[, moonrpc.RandomSelect,
                           moonrpc.peer2peer(arg[1]))
moonrpc.spawn(function()
  print(xc:call("Mul", { A = 3, B = 3 }).C)
  xc:close()
end)
moonrpc.run()
]], server.addr)
      exits_cleanly(rc, out, err, secs)
      assert.are.equal("9\n", out)
    end
  end)
end)
