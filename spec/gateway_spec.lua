-- spec/gateway_spec.lua: `moonrpc gateway`, server-side discovery, end to
-- end: two Lua Arith servers (`moonrpc serve examples/lua/arith_service.lua
-- --registry URL`) and the gateway command run as child processes against
-- a real Redis and a real etcd (the ctest fixtures in spec/redis.cmake and
-- spec/etcd.cmake); this process calls through the gateway with the Lua
-- client (msgpack and JSON) and over raw HTTP (POST /Arith/Mul with JSON,
-- and rpcx's X-RPCX-* headers), checks that calls spread over both
-- instances, that a killed instance does not fail calls, and that SIGTERM
-- stops the gateway cleanly.

local moonrpc = require "moonrpc"
local socket = require "socket"
local json = require "dkjson"
local S = require "support"

local root = S.spec_dir .. "/.."
local MOONRPC = root .. "/scripts/moonrpc"
local ARITH = root .. "/examples/lua/arith_service.lua"

local backend_addr = S.backend_addr

local backends = {
  { name = "redis", addr = backend_addr("MOONRPC_REDIS_DIR") },
  { name = "etcd", addr = backend_addr("MOONRPC_ETCD_DIR") },
}

-- ---- child processes ---------------------------------------------------------

local function wait_exit_file(path, seconds)
  local deadline = socket.gettime() + seconds
  repeat
    local s = S.read_all(path)
    if s and s:match("%d") then return tonumber(s:match("%d+")) end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  return nil
end

-- Runs `moonrpc ARGS...` in the background; waits (5 s at most) for a line
-- of its output to match `ready` (a pattern capturing the address).
-- Returns { pid, addr, log, kill(sig), exit_status(seconds), stop() }.
local function start(ready, ...)
  local log, pidf, exitf = os.tmpname(), os.tmpname(), os.tmpname()
  local parts = {}
  for _, name in ipairs { "LUA_PATH", "LUA_CPATH", "MOONRPC_BUILD" } do
    local v = os.getenv(name)
    if v then parts[#parts + 1] = name .. "=" .. S.shell_quote(v) end
  end
  parts[#parts + 1] = "lua5.4 " .. S.shell_quote(MOONRPC)
  for i = 1, select("#", ...) do parts[#parts + 1] = S.shell_quote((select(i, ...))) end
  -- The inner `$!` is the command's own pid (moonrpc execs the gateway in
  -- place); the shell waits for it and writes its exit status.
  local inner = table.concat(parts, " ") .. " > " .. S.shell_quote(log) .. " 2>&1 & echo $! > "
    .. S.shell_quote(pidf) .. "; wait $!; echo $? > " .. S.shell_quote(exitf)
  os.remove(exitf)
  assert(os.execute("sh -c " .. S.shell_quote(inner) .. " >/dev/null 2>&1 &"))
  local h = { log = log }
  local deadline = socket.gettime() + 5
  while not h.pid and socket.gettime() < deadline do
    h.pid = tonumber((S.read_all(pidf) or ""):match("%d+"))
    if not h.pid then socket.sleep(0.01) end
  end
  assert(h.pid, "no pid for moonrpc " .. tostring((...)))
  function h.output() return S.read_all(log) or "" end
  function h.kill(sig) os.execute(("kill -%s %d 2>/dev/null"):format(sig or "TERM", h.pid)) end
  function h.exit_status(seconds) return wait_exit_file(exitf, seconds) end
  function h.stop()
    if h.stopped then return end
    h.stopped = true
    if S.alive(h.pid) then
      h.kill("TERM")
      if not h.exit_status(5) then h.kill("KILL"); h.exit_status(2) end
    end
    os.remove(log); os.remove(pidf); os.remove(exitf)
  end
  while socket.gettime() < deadline do
    local addr = h.output():match(ready)
    if addr then
      h.addr = addr
      h.host, h.port = addr:match("^%w+@(.+):(%d+)$")
      h.port = tonumber(h.port)
      return h
    end
    if not S.alive(h.pid) then break end
    socket.sleep(0.02)
  end
  local out = h.output()
  h.stop()
  error("moonrpc " .. tostring((...)) .. " did not start; its output:\n" .. out, 2)
end

-- ---- HTTP ------------------------------------------------------------------------

-- Reads one response from `sock`: status, headers (lower-cased names), body.
local function read_response(sock)
  sock:settimeout(5)
  local line, err = sock:receive("*l")
  if not line then return nil, err end
  local status = tonumber(line:match("^HTTP/1%.%d (%d+)"))
  local headers = {}
  while true do
    local h = assert(sock:receive("*l"))
    if h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.-)%s*$")
    headers[k:lower()] = v
  end
  local n = tonumber(headers["content-length"] or "0")
  local body = n > 0 and assert(sock:receive(n)) or ""
  return { status = status, headers = headers, body = body }
end

local function request(sock, method, path, headers, body)
  local lines = { ("%s %s HTTP/1.1"):format(method, path), "Host: gateway" }
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  lines[#lines + 1] = "Content-Length: " .. #(body or "")
  S.send_all(sock, table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or ""))
  return assert(read_response(sock))
end

-- served_by=ADDR from an X-RPCX-Meta query string.
local function served_by(meta)
  local v = (meta or ""):match("served_by=([^&]*)")
  return v and (v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- ---- the specs ------------------------------------------------------------------------

for _, b in ipairs(backends) do
  describe("moonrpc gateway with " .. b.name, function()
    if S.pending_without(b) then return end

    local url, servers, gw, opened
    before_each(function()
      url = ("%s://%s/moonrpc_gw_%d_%d"):format(b.name, b.addr, math.random(1e6), os.time())
      opened = {}
      servers = {}
      for i = 1, 2 do
        servers[i] = start("listening on (%S+)", "serve", ARITH, "--listen", "tcp@127.0.0.1:0",
          "--registry", url, "--ttl", "2")
        opened[#opened + 1] = servers[i].stop
      end
      gw = start("gateway listening on (%S+)", "gateway", "--listen", "tcp@127.0.0.1:0",
        "--registry", url, "--timeout", "5")
      opened[#opened + 1] = gw.stop
    end)
    after_each(function()
      for i = #opened, 1, -1 do pcall(opened[i]) end
    end)

    it("forwards Lua client calls, msgpack and JSON, over both instances", function()
      local xc = moonrpc.xclient("Arith", moonrpc.Failfast, moonrpc.RandomSelect,
        moonrpc.peer2peer(gw.addr), { timeout = 5 })
      opened[#opened + 1] = function() xc:close() end
      local seen = {}
      for i = 1, 6 do
        local reply, err, meta = xc:call("Mul", { A = i, B = 7 })
        assert.is_nil(err)
        assert.are.equal(7 * i, reply.C)
        seen[meta.served_by] = (seen[meta.served_by] or 0) + 1
      end
      assert.are.equal(3, seen[servers[1].addr])
      assert.are.equal(3, seen[servers[2].addr])
      local reply, err = xc:call("Mul", { A = 3, B = 4 }, { serialize = "json" })
      assert.is_nil(err)
      assert.are.equal(12, reply.C)
      local _, derr = xc:call("Div", { A = 1, B = 0 })
      assert.are.equal("EREMOTE", derr.code)
      assert.are.equal("divide by zero", derr.message)
      local nx = moonrpc.xclient("Nope", moonrpc.Failfast, moonrpc.RandomSelect,
        moonrpc.peer2peer(gw.addr), { timeout = 5 })
      local _, nerr = nx:call("X", {})
      nx:close()
      assert.are.equal("EREMOTE", nerr.code)
      assert.are.equal("rpcx: gateway: no instance of service Nope", nerr.message)
    end)

    it("answers HTTP: POST /Arith/Mul with JSON and rpcx's X-RPCX-* headers", function()
      local sock = assert(S.raw_connect(gw.host, gw.port, 5))
      opened[#opened + 1] = function() sock:close() end
      local seen = {}
      for i = 1, 4 do -- one keep-alive connection
        local r = request(sock, "POST", "/Arith/Mul", nil, json.encode { A = i, B = 8 })
        assert.are.equal(200, r.status)
        assert.are.equal("application/json", r.headers["content-type"])
        assert.are.equal(8 * i, json.decode(r.body).C)
        seen[served_by(r.headers["x-rpcx-meta"])] = true
      end
      assert.is_true(seen[servers[1].addr] and seen[servers[2].addr], "both instances answered")
      local r = request(sock, "POST", "/", {
        ["X-RPCX-ServicePath"] = "Arith", ["X-RPCX-ServiceMethod"] = "Mul",
        ["X-RPCX-SerializeType"] = "1", ["X-RPCX-MessageID"] = "9",
      }, '{"A":6,"B":7}')
      assert.are.equal(200, r.status)
      assert.are.equal("Normal", r.headers["x-rpcx-messagestatustype"])
      assert.are.equal("9", r.headers["x-rpcx-messageid"])
      assert.are.equal(42, json.decode(r.body).C)
      r = request(sock, "POST", "/Arith/Div", nil, '{"A":1,"B":0}')
      assert.are.equal(500, r.status)
      assert.are.equal("divide by zero", json.decode(r.body).error)
      r = request(sock, "POST", "/Nope/X", nil, "{}")
      assert.are.equal(404, r.status)
      r = request(sock, "POST", "/", {
        ["X-RPCX-ServicePath"] = "Arith", ["X-RPCX-ServiceMethod"] = "Div",
        ["X-RPCX-SerializeType"] = "1",
      }, '{"A":1,"B":0}')
      assert.are.equal(500, r.status)
      assert.are.equal("Error", r.headers["x-rpcx-messagestatustype"])
      assert.are.equal("divide by zero", r.headers["x-rpcx-errormessage"])
    end)

    it("keeps answering when an instance is killed", function()
      local xc = moonrpc.xclient("Arith", moonrpc.Failfast, moonrpc.RandomSelect,
        moonrpc.peer2peer(gw.addr), { timeout = 5 })
      opened[#opened + 1] = function() xc:close() end
      for i = 1, 4 do assert(xc:call("Mul", { A = i, B = 2 })) end -- both connections up
      servers[2].kill("KILL")
      assert.is_truthy(servers[2].exit_status(5))
      -- Still registered until its TTL (2 s) runs out: calls fail over.
      for i = 1, 6 do
        local reply, err, meta = xc:call("Mul", { A = i, B = 3 })
        assert.is_nil(err)
        assert.are.equal(3 * i, reply.C)
        assert.are.equal(servers[1].addr, meta.served_by)
      end
      -- Over HTTP too.
      local sock = assert(S.raw_connect(gw.host, gw.port, 5))
      opened[#opened + 1] = function() sock:close() end
      for i = 1, 3 do
        local r = request(sock, "POST", "/Arith/Mul", nil, json.encode { A = i, B = 5 })
        assert.are.equal(200, r.status)
        assert.are.equal(5 * i, json.decode(r.body).C)
      end
      -- Once the registry has dropped it, the gateway no longer tries it.
      socket.sleep(3)
      for i = 1, 4 do
        local _, err, meta = xc:call("Mul", { A = i, B = 1 })
        assert.is_nil(err)
        assert.are.equal(servers[1].addr, meta.served_by)
      end
    end)

    it("stops on SIGTERM, answering the HTTP call in flight, and exits 0", function()
      local xc = moonrpc.xclient("Arith", moonrpc.Failfast, moonrpc.RandomSelect,
        moonrpc.peer2peer(gw.addr), { timeout = 5 })
      assert(xc:call("Mul", { A = 1, B = 1 }))
      xc:close()
      local sock = assert(S.raw_connect(gw.host, gw.port, 5))
      opened[#opened + 1] = function() sock:close() end
      S.send_all(sock, "POST /Arith/SlowMul HTTP/1.1\r\nContent-Length: 25\r\n\r\n"
        .. '{"A":6,"B":7,"ms":400}   ')
      socket.sleep(0.1) -- forwarded, and the instance is sleeping
      gw.kill("TERM")
      local r = assert(read_response(sock))
      assert.are.equal(200, r.status)
      assert.are.equal(42, json.decode(r.body).C)
      assert.is_nil((sock:receive(1))) -- then the connection closes
      assert.are.equal(0, gw.exit_status(8))
      assert.is_nil((S.raw_connect(gw.host, gw.port, 1)))
    end)
  end)
end
