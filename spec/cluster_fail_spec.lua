-- spec/cluster_fail_spec.lua: the cluster client's fail modes,
-- broadcast/fork/inform, circuit breaker and connections over several
-- servers on loopback (helpers in spec/cluster_support.lua).

local moonrpc = require "moonrpc"
local C = require "cluster_support"
local S = require "support"
local eventually = S.eventually
local defer, node_handlers, node, nodes, dead_addr, entries, xclient, call, picks, sum_hits, child =
  C.defer, C.node_handlers, C.node, C.nodes, C.dead_addr, C.entries, C.xclient, C.call, C.picks, C.sum_hits, C.child
C.install(after_each)

describe("fail modes", function()
  it("Failfast fails once with ECONNREFUSED on a dead address", function()
    local live = node(2)
    local dead = dead_addr()
    local xc = xclient(moonrpc.Failfast, moonrpc.RoundRobin, moonrpc.multiple_servers(entries { dead, live }))
    local failed = 0
    for _ = 1, 2 do
      local before = live.hits.all or 0
      local call = xc:go("Who", {})
      local r, err = call:wait(2)
      if err then
        failed = failed + 1
        assert.are.equal("ECONNREFUSED", err.code)
        assert.are.equal(dead, err.address)
        assert.are.equal(1, call.tries)
        assert.are.equal(before, live.hits.all or 0, "Failfast tried another server")
      else
        assert.are.equal(2, r.i)
      end
    end
    assert.are.equal(1, failed)
  end)

  it("Failtry retries the same server, which was killed", function()
    local victim = child(1)
    local ns = { victim, node(2), node(3) }
    local xc = xclient(moonrpc.Failtry, moonrpc.RoundRobin, moonrpc.multiple_servers(entries(ns)),
                       { retries = 2 })
    local seq = picks(xc, 3)
    assert.are.same({ 1, 2, 3 }, seq) -- connected to all three
    victim.kill()
    moonrpc.sleep(0.05) -- the xclient notices the lost connection
    local failed = 0
    for _ = 1, 3 do
      local before = sum_hits { ns[2], ns[3] }
      local call = xc:go("Who", {})
      local r, err = call:wait(2)
      if err then
        failed = failed + 1
        assert.are.equal("ECONNREFUSED", err.code)
        assert.are.equal(victim.addr, err.address)
        assert.are.equal(3, call.tries) -- the first try and two retries
        assert.are.equal(before, sum_hits { ns[2], ns[3] }, "Failtry moved to another server")
      else
        assert.is_true(r.i == 2 or r.i == 3)
      end
    end
    assert.are.equal(1, failed)
  end)

  it("Failover loses no call when a server is killed under 10 callers", function()
    local victim = child(1)
    local ns = { victim, node(2), node(3) }
    local xc = xclient(moonrpc.Failover, moonrpc.RoundRobin, moonrpc.multiple_servers(entries(ns)))
    local done, fails, from, finished = 0, {}, {}, 0
    local killed_at
    for co = 1, 10 do
      moonrpc.spawn(function()
        for k = 1, 50 do
          local r, err = call(xc, "Slow", { s = 0.002 })
          done = done + 1
          if err then fails[#fails + 1] = co .. "/" .. k .. ": " .. tostring(err)
          else from[r.i] = (from[r.i] or 0) + 1 end
        end
        finished = finished + 1
      end)
    end
    assert.is_true(eventually(function() return done >= 100 end, 5))
    killed_at = done
    victim.kill()
    assert.is_true(eventually(function() return finished == 10 end, 10), "callers did not finish")
    assert.are.equal(500, done)
    assert.are.same({}, fails)
    assert.is_true(killed_at < 400, "the kill came too late to matter: " .. killed_at)
    assert.is_true((from[1] or 0) > 0, "the killed server served nothing before the kill")
  end)

  it("go() under Failover survives a server killed with calls in flight", function()
    local victim = child(1)
    local ns = { victim, node(2), node(3) }
    local xc = xclient(moonrpc.Failover, moonrpc.RoundRobin, moonrpc.multiple_servers(entries(ns)))
    local calls = {}
    for k = 1, 30 do calls[k] = xc:go("Slow", { s = 0.3 }) end
    moonrpc.sleep(0.05)
    for k = 1, 30 do assert.is_false(calls[k]:is_ready()) end
    -- a third of the calls are in flight on the victim
    assert.are.equal(20, sum_hits({ ns[2], ns[3] }, "Slow"))
    victim.kill()
    local fails, from = {}, {}
    for k = 1, 30 do
      local r, err = calls[k]:wait(3)
      if err then fails[#fails + 1] = k .. ": " .. tostring(err)
      else from[r.i] = (from[r.i] or 0) + 1 end
    end
    assert.are.same({}, fails)
    assert.is_nil(from[1])
    assert.are.equal(30, (from[2] or 0) + (from[3] or 0))
    assert.are.equal(30, sum_hits({ ns[2], ns[3] }, "Slow")) -- each retried once
  end)

  it("Failbackup answers from the fast server whichever is picked first", function()
    local ns = nodes(2)
    local xc = xclient(moonrpc.Failbackup, moonrpc.RoundRobin, moonrpc.multiple_servers(entries(ns)),
                       { backup_latency = 0.05 })
    defer(function() eventually(function() return ns[1].s:stats().inflight == 0 end, 1) end)
    local lags = 0
    for k = 1, 6 do
      local t0 = moonrpc.now()
      local r, err = call(xc, "Lag", { slow = 1, s = 0.5 })
      local took = moonrpc.now() - t0
      lags = lags + 1
      assert.is_nil(err)
      assert.are.equal(2, r.i)
      assert.is_true(took < 450, "call " .. k .. " took " .. took .. " ms") -- the slow one: 500
      -- a backup request takes a round-robin turn: shift the order now and then
      if k % 2 == 0 then assert(call(xc, "Who", {})) end
    end
    -- node 1 runs Lag only when it is picked first (the fast node, picked
    -- first, answers before the backup would go out)
    local slow_first = ns[1].hits.Lag or 0
    assert.is_true(slow_first >= 1, "the slow server was never picked first")
    assert.is_true(slow_first < lags, "the fast server was never picked first")
    assert.are.equal(lags, ns[2].hits.Lag)
  end)

  it("never retries an error the service returned (EREMOTE)", function()
    for _, mode in ipairs { moonrpc.Failtry, moonrpc.Failover } do
      local ns = nodes(3)
      local xc = xclient(mode, moonrpc.RoundRobin, moonrpc.multiple_servers(entries(ns)))
      local call = xc:go("Maybe", { bad = "all" })
      local r, err = call:wait(2)
      assert.is_nil(r)
      assert.are.equal("EREMOTE", err.code, mode)
      assert.matches("node %d refuses", err.message)
      assert.are.equal(1, sum_hits(ns, "Maybe"), mode .. " retried a service error")
    end
  end)

  it("never retries past the call's own timeout", function()
    local hung = child(1)
    hung.signal("STOP") -- accepts connections (the kernel does), never answers
    local dead = dead_addr()
    local cases = {
      { moonrpc.Failtry, { hung } },
      { moonrpc.Failover, { dead, hung } },
      { moonrpc.Failover, { hung, dead } },
    }
    for _, c in ipairs(cases) do
      local xc = xclient(c[1], moonrpc.RoundRobin, moonrpc.multiple_servers(entries(c[2])),
                         { retries = 10, timeout = 0.3 })
      local t0 = moonrpc.now()
      local r, err = call(xc, "Who", {})
      local took = moonrpc.now() - t0
      assert.is_nil(r)
      assert.are.equal("ETIMEDOUT", err and err.code, c[1])
      assert.is_true(took >= 280 and took < 580, c[1] .. " took " .. took .. " ms") -- 2 tries: 600
    end
    -- Heartbeats to the stopped server fail (a retryable failure) every
    -- ~0.15 s: Failtry retries them, but only until the 0.5 s timeout.
    local xc = xclient(moonrpc.Failtry, moonrpc.RoundRobin, moonrpc.peer2peer(hung.addr),
                       { retries = 50, timeout = 0.5, heartbeat = 0.05, heartbeat_timeout = 0.1 })
    local t0 = moonrpc.now()
    local call = xc:go("Who", {})
    local r, err = call:wait(3)
    local took = moonrpc.now() - t0
    assert.is_nil(r)
    assert.is_true(err.code == "ETIMEDOUT" or err.code == "EHEARTBEAT", tostring(err))
    assert.is_true(call.tries >= 2, "no retry happened: " .. call.tries)
    assert.is_true(took < 850, "Failtry took " .. took .. " ms with a 500 ms timeout") -- 2 tries: 1000
  end)
end)

describe("broadcast, fork and inform", function()
  it("broadcast succeeds only if every server succeeds", function()
    local ns = nodes(3)
    local xc = xclient(moonrpc.Failover, moonrpc.RoundRobin, moonrpc.multiple_servers(entries(ns)))
    local r, err = xc:broadcast("Maybe", { bad = 0 })
    assert.is_nil(err)
    assert.are.equal(1, r.i) -- the first server's reply
    for _, n in ipairs(ns) do assert.are.equal(1, n.hits.Maybe) end
    r, err = xc:broadcast("Maybe", { bad = 2 })
    assert.is_nil(r)
    assert.are.equal("EREMOTE", err.code)
    assert.matches("node 2 refuses", err.message)
    for _, n in ipairs(ns) do assert.are.equal(2, n.hits.Maybe) end
  end)

  it("fork returns the first success", function()
    local ns = nodes(3)
    local xc = xclient(moonrpc.Failover, moonrpc.RoundRobin, moonrpc.multiple_servers(entries(ns)))
    for bad = 1, 3 do
      local r, err = xc:fork("Maybe", { bad = bad })
      assert.is_nil(err)
      assert.is_true(r.i ~= bad and r.i >= 1 and r.i <= 3, "fork answered " .. tostring(r.i))
    end
    local r, err = xc:fork("Maybe", { bad = "all" })
    assert.is_nil(r)
    assert.are.equal("EREMOTE", err.code)
    -- the first success, not the last answer: a slow server does not hold it up
    for slow = 1, 3 do
      local t0 = moonrpc.now()
      r, err = xc:fork("Lag", { slow = slow, s = 0.5 })
      local took = moonrpc.now() - t0
      assert.is_nil(err)
      assert.are_not.equal(slow, r.i)
      assert.is_true(took < 450, "fork waited " .. took .. " ms for the slow server") -- it: 500
    end
    assert.is_true(eventually(function()
      for _, n in ipairs(ns) do if n.s:stats().inflight > 0 then return false end end
      return true
    end, 1))
  end)

  it("inform returns one entry per server with its reply or error", function()
    local ns = nodes(3)
    local xc = xclient(moonrpc.Failover, moonrpc.RoundRobin, moonrpc.multiple_servers(entries(ns)))
    local results = xc:inform("Maybe", { bad = 2 })
    assert.are.equal(3, #results)
    local by = {}
    for _, r in ipairs(results) do
      assert.is_nil(by[r.address], "two entries for " .. tostring(r.address))
      by[r.address] = r
    end
    for _, n in ipairs(ns) do
      local r = by[n.addr]
      assert.is_not_nil(r, "no entry for " .. n.addr)
      if n.i == 2 then
        assert.is_nil(r.reply)
        assert.are.equal("EREMOTE", r.error.code)
        assert.matches("node 2 refuses", r.error.message)
      else
        assert.is_nil(r.error)
        assert.are.equal(n.i, r.reply.i)
      end
    end
  end)
end)

describe("circuit breaker", function()
  -- Three refused calls open the breaker on `addr`; returns the time of
  -- the third.
  local function trip(xc)
    for k = 1, 3 do
      local r, err = call(xc, "Who", {})
      assert.is_nil(r)
      assert.are.equal("ECONNREFUSED", err.code, "failure " .. k)
    end
    return moonrpc.now()
  end

  it("opens after 3 failures, then lets one trial through and closes when the server is back", function()
    local addr = dead_addr()
    local xc = xclient(moonrpc.Failfast, moonrpc.RoundRobin, moonrpc.peer2peer(addr),
                       { breaker = { failures = 3, window = 0.3 } })
    local opened = trip(xc)
    -- the server is back at once, but the breaker keeps calls off the network
    local back = node(1, addr)
    for k = 1, 5 do
      local t0 = moonrpc.now()
      local r, err = call(xc, "Who", {})
      assert.is_nil(r)
      assert.are.equal("EBREAKER", err and err.code, "call " .. k .. " in the window")
      assert.is_true(moonrpc.now() - t0 < 100, "an open breaker took " .. (moonrpc.now() - t0) .. " ms")
    end
    moonrpc.sleep(0.05)
    assert.is_nil(back.hits.all)
    assert.are.equal(0, back.s:stats().conns, "the xclient connected while the breaker was open")
    assert.is_true(moonrpc.now() - opened < 300, "the window ended before the checks did")
    -- after the window: one trial at a time; concurrent callers still fail
    moonrpc.sleep(math.max(0, 0.32 - (moonrpc.now() - opened) / 1000))
    local calls = {}
    for k = 1, 4 do calls[k] = xc:go("Who", {}) end
    local ok, broken = 0, 0
    for k = 1, 4 do
      local r, err = calls[k]:wait(2)
      if r then ok = ok + 1; assert.are.equal(1, r.i)
      else broken = broken + 1; assert.are.equal("EBREAKER", err.code) end
    end
    assert.are.equal(1, ok, "not exactly one trial call")
    assert.are.equal(3, broken)
    assert.are.equal(1, back.hits.all)
    -- the trial succeeded: the breaker is closed
    local _, hist = picks(xc, 10)
    assert.are.same({ [1] = 10 }, hist)
  end)

  it("reopens for another window when the trial fails", function()
    local addr = dead_addr()
    local xc = xclient(moonrpc.Failfast, moonrpc.RoundRobin, moonrpc.peer2peer(addr),
                       { breaker = { failures = 3, window = 0.3 } })
    local opened = trip(xc)
    moonrpc.sleep(math.max(0, 0.32 - (moonrpc.now() - opened) / 1000))
    local r, err = call(xc, "Who", {}) -- the trial: still refused
    assert.is_nil(r)
    assert.are.equal("ECONNREFUSED", err.code)
    local reopened = moonrpc.now()
    local back = node(1, addr)
    r, err = call(xc, "Who", {})
    assert.is_nil(r)
    assert.are.equal("EBREAKER", err.code)
    moonrpc.sleep(0.1)
    r, err = call(xc, "Who", {})
    assert.are.equal("EBREAKER", err and err.code)
    assert.is_nil(back.hits.all)
    assert.is_true(moonrpc.now() - reopened < 300, "the second window ended before the checks did")
    moonrpc.sleep(math.max(0, 0.32 - (moonrpc.now() - reopened) / 1000))
    r, err = call(xc, "Who", {})
    assert.is_nil(err)
    assert.are.equal(1, r.i)
  end)

  it("skips a broken server under Failover and succeeds on the other", function()
    local live = node(2)
    local dead = dead_addr()
    local xc = xclient(moonrpc.Failover, moonrpc.RoundRobin, moonrpc.multiple_servers(entries { dead, live }),
                       { breaker = { failures = 3, window = 5 } })
    local fails, tries, n = {}, 0, 0
    local t_end = moonrpc.now() + 800
    while moonrpc.now() < t_end do
      n = n + 1
      local call = xc:go("Who", {})
      local r, err = call:wait(2)
      tries = tries + call.tries
      if err then fails[#fails + 1] = tostring(err) else assert.are.equal(2, r.i) end
      moonrpc.sleep(0.01)
    end
    assert.are.same({}, fails)
    assert.is_true(n >= 20, "only " .. n .. " calls")
    assert.is_true(tries >= 1, "the broken server was never tried")
    assert.is_true(tries <= 3, "the broken server was tried " .. tries .. " times")
    assert.is_true(xc.health:is_open(dead), "the breaker on the dead server is not open")
    assert.are.equal(n, live.hits.all)
  end)
end)

describe("connections", function()
  it("opts.pool = 3 opens up to 3 connections to one server", function()
    local n = node(1)
    local xc = xclient(moonrpc.Failfast, moonrpc.RoundRobin, moonrpc.peer2peer(n.addr), { pool = 3 })
    local calls = {}
    for k = 1, 12 do calls[k] = xc:go("Slow", { s = 0.01 }) end
    for k = 1, 12 do assert.are.equal(1, assert(calls[k]:wait(2)).i) end
    assert.is_true(eventually(function() return n.s:stats().conns == 3 end),
                   "conns = " .. n.s:stats().conns)
    picks(xc, 30)
    moonrpc.sleep(0.02)
    assert.are.equal(3, n.s:stats().conns)
    -- the default is one
    local one = xclient(moonrpc.Failfast, moonrpc.RoundRobin, moonrpc.peer2peer(n.addr))
    picks(one, 10)
    assert.is_true(eventually(function() return n.s:stats().conns == 4 end))
    moonrpc.sleep(0.02)
    assert.are.equal(4, n.s:stats().conns)
  end)

  it("a dead server does not stall calls to the others", function()
    local ns = nodes(2)
    local dead = dead_addr()
    for _, sel in ipairs { moonrpc.RoundRobin, moonrpc.RandomSelect } do
      local xc = xclient(moonrpc.Failover, sel, moonrpc.multiple_servers(entries { ns[1], dead, ns[2] }))
      local t0 = moonrpc.now()
      local _, hist = picks(xc, 100)
      local took = moonrpc.now() - t0
      assert.are.same({ [1] = hist[1], [2] = hist[2] }, hist, sel .. " had failures")
      assert.are.equal(100, (hist[1] or 0) + (hist[2] or 0))
      assert.is_true(took < 2000, sel .. ": 100 calls took " .. took .. " ms")
    end
  end)
end)
