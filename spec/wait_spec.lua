-- spec/wait_spec.lua: `moonrpc wait` and the --ready-file of the server
-- commands (lua/moonrpc/cli/wait.lua, moonrpc.cli.util's ready files), run
-- as a shell script runs them: a file left by an earlier run never passes
-- for this one, the address is there once the server listens, the file is
-- gone after a graceful stop; wait exits 0 once ready, 1 on its timeout.

local S = require "support"
local socket = require "socket"

local MOONRPC = S.spec_dir .. "/../scripts/moonrpc"
local ARITH = S.spec_dir .. "/../examples/lua/arith_service.lua"

local function run(...)
  local parts = { "lua5.4", S.shell_quote(MOONRPC) }
  for i = 1, select("#", ...) do parts[#parts + 1] = S.shell_quote((select(i, ...))) end
  local err = os.tmpname()
  local p = assert(io.popen(table.concat(parts, " ") .. " 2>" .. err .. "; echo \"rc=$?\""))
  local out = p:read("a")
  p:close()
  local stderr = S.read_all(err) or ""
  os.remove(err)
  local body, rc = out:match("^(.-)rc=(%d+)\n$")
  return body, stderr, tonumber(rc)
end

describe("moonrpc wait", function()
  it("exits 1 naming what is not ready after --timeout", function()
    local dead = S.dead_port() -- an address nobody listens on
    local missing = os.tmpname()
    os.remove(missing)
    local t0 = socket.gettime()
    local out, err, rc = run("wait", dead, missing, "--timeout", "0.5")
    assert.equal(1, rc)
    assert.equal("", out)
    assert.truthy(err:find("not ready after 0.5 s", 1, true), err)
    assert.truthy(err:find(dead .. " (ECONNREFUSED", 1, true), err)
    assert.truthy(err:find(missing .. " (no file", 1, true), err)
    assert.is_true(socket.gettime() - t0 < 10) -- generous: it gave up
  end)

  it("refuses a bad --timeout and no target with exit 2", function()
    assert.equal(2, select(3, run("wait", "tcp@127.0.0.1:1", "--timeout", "soon")))
    assert.equal(2, select(3, run("wait")))
  end)

  it("waits for serve's --ready-file, which replaces a stale one and goes on a graceful stop", function()
    local ready = os.tmpname()
    local f = assert(io.open(ready, "w")); f:write("stale\n"); f:close()
    local srv = S.spawn(MOONRPC, "serve", ARITH, "--listen", "tcp@127.0.0.1:0", "--ready-file", ready)
    finally(srv.stop)
    local out, err, rc = run("wait", ready, srv.addr, "--timeout", "10")
    assert.equal(0, rc, err)
    assert.equal("", out)
    assert.equal(srv.addr .. "\n", S.read_all(ready))
    os.execute("kill -TERM " .. srv.pid)
    assert.is_true(S.eventually(function() return not srv.alive() end, 10))
    assert.is_nil(io.open(ready))
  end)

  it("waits for the registry's and the Lua echo's --ready-file", function()
    for _, cmd in ipairs { { "registry" }, { "echo", "--lua" } } do
      local ready = os.tmpname()
      os.remove(ready)
      local args = { table.unpack(cmd) }
      for _, a in ipairs { "--listen", "tcp@127.0.0.1:0", "--ready-file", ready } do args[#args + 1] = a end
      local srv = S.spawn(MOONRPC, table.unpack(args))
      local _, err, rc = run("wait", ready, "--timeout", "10")
      local written = S.read_all(ready)
      srv.stop()
      assert.equal(0, rc, err)
      assert.equal(srv.addr .. "\n", written)
    end
  end)
end)
