-- spec/workers_spec.lua: `moonrpc serve FILE --workers 2` (moonrpc.workers):
-- two worker processes on one address, each its own Lua state; calls spread
-- over both; a killed worker is reported and restarted while the other
-- keeps serving; SIGTERM drains both; the address is registered once; the
-- workers stop when their supervisor is killed. Also the C echo server's
-- --workers (threads) and `moonrpc echo --lua --workers`. No timing is
-- asserted beyond generous bounds on waits.

local S = require "support"
local socket = require "socket"
local moonrpc = require "moonrpc"

local MOONRPC = S.spec_dir .. "/../scripts/moonrpc"
local SERVICE = S.spec_dir .. "/servers/worker_service.lua"

local function pids_of(h)
  local line = h.output():match("^([^\n]*)")
  local list = {}
  for p in line:match("pids ([%d ]+)%)"):gmatch("%d+") do list[#list + 1] = tonumber(p) end
  return list
end

-- `n` calls of Who.method, each on a connection of its own (a fresh
-- xclient), so the kernel's SO_REUSEPORT spread is what is seen.
local function calls(addr, n, method, args)
  local seen, replies, errs = {}, {}, {}
  for i = 1, n do
    local xc = moonrpc.xclient("Who", moonrpc.Failfast, moonrpc.RandomSelect,
                               moonrpc.peer2peer(addr), { timeout = 5 })
    local r, err = xc:call(method or "Pid", args or {})
    xc:close()
    if r then seen[r.pid] = (seen[r.pid] or 0) + 1; replies[i] = r
    else errs[#errs + 1] = tostring(err) end
  end
  return seen, replies, errs
end

local function keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

local function wait_for(fn, seconds)
  local deadline = socket.gettime() + seconds
  while socket.gettime() < deadline do
    if fn() then return true end
    socket.sleep(0.05)
  end
  return fn()
end

describe("moonrpc serve --workers 2", function()
  it("runs two processes on one address, and calls spread over both", function()
    local h = S.spawn(MOONRPC, "serve", SERVICE, "--listen", "tcp@127.0.0.1:0", "--workers", "2")
    finally(h.stop)
    local pids = pids_of(h)
    assert.are.equal(2, #pids)
    assert.are_not.equal(pids[1], pids[2])
    local seen, replies, errs = calls(h.addr, 24)
    assert.are.same({}, errs)
    table.sort(pids)
    assert.are.same(pids, keys(seen)) -- 24 connections: both workers answered
    local workers = {}
    for _, r in ipairs(replies) do workers[r.worker] = true end
    assert.are.same({ "1", "2" }, keys(workers))
    -- Lua state is per worker: the two counts add up to the calls made.
    local _, counts = calls(h.addr, 24, "Count")
    local per = {}
    for _, r in ipairs(counts) do per[r.pid] = r.n end
    assert.are.equal(24, (per[pids[1]] or 0) + (per[pids[2]] or 0))
  end)

  it("reports a killed worker, keeps serving on the other, and restarts it", function()
    local h = S.spawn(MOONRPC, "serve", SERVICE, "--listen", "tcp@127.0.0.1:0", "--workers", "2")
    finally(h.stop)
    local pids = pids_of(h)
    os.execute("kill -KILL " .. pids[2])
    assert.is_true(wait_for(function() return not S.alive(pids[2]) end, 5))
    -- Every call made while worker 2 is away is answered, by worker 1.
    local seen, _, errs = calls(h.addr, 12)
    assert.are.same({}, errs)
    assert.are.equal(12, (seen[pids[1]] or 0) + (seen[pids[2]] or 0))
    assert.is_nil(seen[pids[2]])
    assert.is_true(wait_for(function() return h.output():match("serves again") end, 10), h.output())
    assert.matches("worker 2 %(pid " .. pids[2] .. "%) killed by SIGKILL; restarting it", h.output())
    -- The new worker 2 takes connections again.
    local again = {}
    assert.is_true(wait_for(function()
      local s = calls(h.addr, 8)
      for p in pairs(s) do again[p] = true end
      return #keys(again) == 2
    end, 10))
    assert.is_true(again[pids[1]])
    assert.is_nil(again[pids[2]])
    assert.is_true(S.alive(h.pid))
  end)

  it("drains the calls in flight on both workers on SIGTERM, then exits 0", function()
    local h = S.spawn(MOONRPC, "serve", SERVICE, "--listen", "tcp@127.0.0.1:0", "--workers", "2")
    finally(h.stop)
    local pids = pids_of(h)
    local xcs, futs = {}, {}
    for i = 1, 16 do
      xcs[i] = moonrpc.xclient("Who", moonrpc.Failfast, moonrpc.RandomSelect,
                               moonrpc.peer2peer(h.addr), { timeout = 10 })
      futs[i] = xcs[i]:go("Slow", { s = 1 })
    end
    moonrpc.sleep(0.3) -- every request has reached its worker
    local t_kill = moonrpc.now()
    os.execute("kill -TERM " .. h.pid)
    local seen = {}
    for i = 1, 16 do
      local r, err = futs[i]:wait()
      assert.is_nil(err, tostring(err) .. " call " .. i .. " at " .. (moonrpc.now() - t_kill) .. " ms; " .. h.output())
      seen[r.pid] = true
      xcs[i]:close()
    end
    table.sort(pids)
    assert.are.same(pids, keys(seen))
    assert.is_true(wait_for(function() return not S.alive(h.pid) end, 10))
    for _, p in ipairs(pids) do assert.is_false(S.alive(p)) end
    assert.matches("SIGTERM: shutting down 2 workers", h.output())
  end)

  it("registers the address once, with the service's metadata, and unregisters it", function()
    -- busted keeps one finally per test: it closes all four.
    local reg, h, r, gw
    finally(function()
      if r then r:close() end
      if gw then os.execute("kill -TERM " .. gw.pid .. " 2>/dev/null"); os.remove(gw.log) end
      if h then h.stop() end
      reg.stop()
    end)
    reg = S.spawn(MOONRPC, "registry", "--listen", "tcp@127.0.0.1:0")
    local url = "moonrpc://" .. reg.host .. ":" .. reg.port
    h = S.spawn(MOONRPC, "serve", SERVICE, "--listen", "tcp@127.0.0.1:0", "--workers", "2",
                "--registry", url, "--ttl", "2")
    r = assert(moonrpc.registry(url))
    local list = assert(r:list("Who"))
    assert.are.equal(1, #list)
    assert.are.equal(h.addr, list[1].addr)
    assert.are.equal("group=workers&weight=3", list[1].metadata)
    -- The gateway finds the one instance; with --conns 8 its calls reach
    -- both workers.
    gw = { log = os.tmpname() }
    local p = io.popen("sh -c " .. S.shell_quote("exec lua5.4 " .. S.shell_quote(MOONRPC) ..
      " gateway --listen tcp@127.0.0.1:0 --conns 8 --registry " .. S.shell_quote(url) .. " > " ..
      S.shell_quote(gw.log) .. " 2>&1 & echo $!"))
    gw.pid = tonumber(p:read("l"))
    p:close()
    assert.is_true(wait_for(function()
      gw.addr = (S.read_all(gw.log) or ""):match("gateway listening on (%S+)")
      return gw.addr ~= nil
    end, 5), S.read_all(gw.log))
    local through = {}
    assert.is_true(wait_for(function()
      local seen = calls(gw.addr, 4)
      for pid in pairs(seen) do through[pid] = true end
      return #keys(through) == 2
    end, 10))
    -- The lease lives on in the supervisor when a worker dies.
    os.execute("kill -KILL " .. pids_of(h)[1])
    moonrpc.sleep(3) -- past the 2 s TTL
    assert.are.equal(1, #assert(r:list("Who")))
    os.execute("kill -TERM " .. h.pid)
    assert.is_true(wait_for(function() return not S.alive(h.pid) end, 10))
    assert.are.equal(0, #assert(r:list("Who")))
  end)

  it("stops its workers when the supervisor is killed", function()
    local h = S.spawn(MOONRPC, "serve", SERVICE, "--listen", "tcp@127.0.0.1:0", "--workers", "2")
    finally(h.stop)
    local pids = pids_of(h)
    os.execute("kill -KILL " .. h.pid)
    assert.is_true(wait_for(function() return not S.alive(pids[1]) and not S.alive(pids[2]) end, 10))
  end)

  it("refuses a bad --workers value", function()
    local p = io.popen("lua5.4 " .. S.shell_quote(MOONRPC) .. " serve " .. S.shell_quote(SERVICE) ..
                       " --workers 0 2>&1; echo rc=$?")
    local out = p:read("a")
    p:close()
    assert.matches("%-%-workers takes a count or 'auto'", out)
    assert.matches("rc=2", out)
  end)
end)

describe("moonrpc echo --workers 2", function()
  for _, kind in ipairs { "C", "Lua" } do
    it("answers on one address from two loops (" .. kind .. " handler)", function()
      local args = { "echo", "--listen", "tcp@127.0.0.1:0", "--workers", "2" }
      if kind == "Lua" then args[#args + 1] = "--lua" end
      local h = S.spawn(MOONRPC, table.unpack(args))
      finally(h.stop)
      assert.matches("2 workers", h.output())
      local ok = 0
      for _ = 1, 16 do
        local xc = moonrpc.xclient("Echo", moonrpc.Failfast, moonrpc.RandomSelect,
                                   moonrpc.peer2peer(h.addr), { timeout = 5 })
        local r = xc:call("Echo", moonrpc.bin("ping"))
        xc:close()
        if r == "ping" then ok = ok + 1 end
      end
      assert.are.equal(16, ok)
      os.execute("kill -TERM " .. h.pid)
      assert.is_true(wait_for(function() return not S.alive(h.pid) end, 10))
    end)
  end
end)
