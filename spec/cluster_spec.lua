--- Spec for the cluster client (lua/moonrpc/xclient.lua, health.lua,
-- discovery.lua, lua/src/lselector.c, core/src/selector.c): discovery lists
-- and their live updates, the selectors' distributions, group and state
-- governance, the fail modes, broadcast/fork/inform, the circuit breaker and
-- connection pools, over 3 to 5 servers on loopback.
--
-- Every node serves "Node", whose replies carry the node's index, so a test
-- sees which server a call reached. Nodes run in this Lua state and loop,
-- except those a test must kill or stop: those are child processes running
-- spec/servers/cluster_server.lua. Everything a test opens is registered
-- with `defer` and closed in after_each, also when the test fails.

local moonrpc = require "moonrpc"

local here = debug.getinfo(1, "S").source:match("^@(.*)$"):match("^(.*)/[^/]*$") or "."
local NODE_SCRIPT = here .. "/servers/cluster_server.lua"

-- ---- cleanup ---------------------------------------------------------------

local cleanups = {}

--- Runs `fn` after the current test, pass or fail (last registered first).
local function defer(fn)
  cleanups[#cleanups + 1] = fn
  return fn
end

after_each(function()
  local errs = {}
  for i = #cleanups, 1, -1 do
    local ok, e = pcall(cleanups[i])
    if not ok then errs[#errs + 1] = tostring(e) end
  end
  cleanups = {}
  assert.are.same({}, errs, "cleanup failed")
end)

-- ---- helpers ---------------------------------------------------------------

local function eventually(pred, seconds)
  local deadline = moonrpc.now() + (seconds or 2) * 1000
  while not pred() do
    if moonrpc.now() > deadline then return false end
    moonrpc.sleep(0.005)
  end
  return true
end

--- Node i's handlers (the same as cluster_server.lua's); `hits` counts
-- invocations per method and in all.
local function node_handlers(i, hits)
  local function hit(m)
    hits[m] = (hits[m] or 0) + 1
    hits.all = (hits.all or 0) + 1
  end
  return {
    Who = function(_, a) hit("Who"); return { i = i, key = type(a) == "table" and a.key or nil } end,
    Slow = function(_, a) hit("Slow"); moonrpc.sleep(a.s); return { i = i } end,
    Lag = function(_, a)
      hit("Lag")
      if a.slow == i then moonrpc.sleep(a.s) end
      return { i = i }
    end,
    Maybe = function(_, a)
      hit("Maybe")
      if a.bad == i or a.bad == "all" then error("node " .. i .. " refuses") end
      return { i = i }
    end,
  }
end

--- An in-process node: { i=, s=, addr=, hits= }, closed after the test.
local function node(i, address)
  local n = { i = i, hits = {} }
  n.s = moonrpc.server()
  n.s:register("Node", node_handlers(i, n.hits))
  local addr, err = n.s:serve(address or "tcp@127.0.0.1:0")
  assert(addr, tostring(err))
  n.addr = addr
  defer(function() n.s:close() end)
  return n
end

local function nodes(count)
  local list = {}
  for i = 1, count do list[i] = node(i) end
  return list
end

--- A loopback TCP address nobody listens on (connections are refused).
local function dead_addr()
  local s = moonrpc.server()
  s:register("X", { f = function() end })
  local addr = assert(s:serve("tcp", "127.0.0.1:0"))
  s:close()
  moonrpc.sleep(0.01)
  return addr
end

--- The discovery entries of `list` (nodes or address strings), with
-- metadata meta(i, n) when given.
local function entries(list, meta)
  local out = {}
  for k, n in ipairs(list) do
    local addr = type(n) == "string" and n or n.addr
    out[k] = { addr = addr, metadata = meta and meta(k, n) or "" }
  end
  return out
end

--- An xclient of "Node", closed after the test.
local function xclient(mode, selector, disc, opts)
  local xc = moonrpc.xclient("Node", mode, selector, disc, opts)
  defer(function() xc:close() end)
  return xc
end

--- xc:call, but a call that hangs fails the test instead of the run: it
-- is waited for at most 5 s (then nil, ETIMEDOUT "wait timed out").
local function call(xc, method, args, opts)
  local c = xc:go(method, args, opts)
  local r, err, meta = c:wait(5)
  if not c:is_ready() then c:discard() end
  return r, err, meta
end

--- Makes `count` calls of `method` and returns the picks (reply.i, or
-- "ERR:"..code) in order and a histogram.
local function picks(xc, count, method, args)
  local seq, hist = {}, {}
  for k = 1, count do
    local r, err = call(xc, method or "Who", args or {})
    local v = r and r.i or ("ERR:" .. tostring(err and err.code))
    seq[k] = v
    hist[v] = (hist[v] or 0) + 1
  end
  return seq, hist
end

local function sum_hits(list, method)
  local total = 0
  for _, n in ipairs(list) do total = total + (n.hits[method or "all"] or 0) end
  return total
end

-- ---- child processes -------------------------------------------------------

--- Starts node `i` as a child process (on `port`, or any free port);
-- returns { pid=, addr=, i= }; it is killed after the test.
local function child(i, port)
  local p = assert(io.popen(string.format("echo $$; exec lua5.4 '%s' %d %d",
                                          NODE_SCRIPT, i, port or 0), "r"))
  local pid = tonumber(p:read("l"))
  local line = p:read("l") or "(the child wrote nothing)"
  local addr = line:match("^listening on (.+)$")
  local c = { pid = pid, pipe = p, addr = addr, i = i }
  function c.signal(sig)
    if c.pipe then os.execute(string.format("kill -%s %d 2>/dev/null", sig, c.pid)) end
  end
  --- kill -9 (after SIGCONT, for a stopped child), and wait until it is gone.
  function c.reap()
    if c.pipe then
      c.signal("CONT")
      c.signal("KILL")
      c.pipe:close() -- waits for the shell that exec'd lua5.4
      c.pipe = nil
    end
  end
  c.kill = c.reap
  defer(c.reap)
  if not (pid and addr) then error("child node " .. i .. " did not start: " .. line) end
  return c
end

-- ---- the specs -------------------------------------------------------------------

describe("discovery", function()
  it("multiple_servers carries each server's metadata to the xclient", function()
    local ns = nodes(3)
    local d = moonrpc.multiple_servers(entries(ns, function(k) return "idx=" .. k .. "&weight=" .. (10 * k) end))
    local list = d:get()
    assert.are.equal(3, #list)
    for k, s in ipairs(list) do
      assert.are.equal(ns[k].addr, s.addr)
      assert.are.equal("idx=" .. k .. "&weight=" .. (10 * k), s.metadata)
      assert.are.same({ idx = tostring(k), weight = tostring(10 * k) }, s.meta)
    end
    -- A user selector that picks by metadata reaches the node it names.
    local xc = xclient(moonrpc.Failfast, function(servers, _, _, args)
      for _, s in ipairs(servers) do
        if s.meta.idx == tostring(args.want) then return s end
      end
    end, d)
    for _, want in ipairs { 3, 1, 2, 2, 3, 1 } do
      local r, err = call(xc, "Who", { want = want })
      assert.is_nil(err)
      assert.are.equal(want, r.i)
    end
  end)

  it("applies d:update live to an xclient made before the update", function()
    local ns = nodes(4)
    local d = moonrpc.multiple_servers(entries { ns[1], ns[2] })
    local xc = xclient(moonrpc.Failfast, moonrpc.RoundRobin, d)
    local _, hist = picks(xc, 10)
    assert.are.same({ [1] = 5, [2] = 5 }, hist)
    d:update(entries { ns[3], ns[4] })
    _, hist = picks(xc, 10)
    assert.are.same({ [3] = 5, [4] = 5 }, hist)
    assert.are.equal(5, ns[1].hits.all)
    assert.are.equal(5, ns[2].hits.all)
  end)

  it("feeds two xclients from one discovery", function()
    local ns = nodes(3)
    local d = moonrpc.multiple_servers(entries { ns[1] })
    local a = xclient(moonrpc.Failfast, moonrpc.RoundRobin, d)
    local b = xclient(moonrpc.Failover, moonrpc.RandomSelect, d)
    assert.are.equal(1, assert(call(a, "Who", {})).i)
    assert.are.equal(1, assert(call(b, "Who", {})).i)
    d:update(entries { ns[2], ns[3] })
    local _, ha = picks(a, 6)
    local _, hb = picks(b, 60)
    assert.are.same({ [2] = 3, [3] = 3 }, ha)
    assert.is_nil(hb[1])
    assert.are.equal(60, (hb[2] or 0) + (hb[3] or 0))
    assert.is_true((hb[2] or 0) > 0 and (hb[3] or 0) > 0, "RandomSelect used one server only")
  end)

  it("accepts unix socket addresses in the list", function()
    local tag = string.format("/tmp/moonrpc-cluster-%d-%d", os.time(), math.random(1, 1e9))
    local ns = {}
    for i = 1, 3 do
      local path = tag .. "-" .. i .. ".sock"
      os.remove(path)
      defer(function() os.remove(path) end)
      ns[i] = node(i, "unix@" .. path)
      assert.are.equal("unix@" .. path, ns[i].addr)
    end
    local d = moonrpc.multiple_servers(entries(ns))
    local xc = xclient(moonrpc.Failfast, moonrpc.RoundRobin, d)
    local seq = picks(xc, 6)
    assert.are.same({ 1, 2, 3, 1, 2, 3 }, seq)
  end)
end)

describe("selectors", function()
  it("RandomSelect spreads 3000 calls evenly over 3 servers (each within 15%)", function()
    local ns = nodes(3)
    local xc = xclient(moonrpc.Failfast, moonrpc.RandomSelect, moonrpc.multiple_servers(entries(ns)))
    local _, hist = picks(xc, 3000)
    for i = 1, 3 do
      local c = hist[i] or 0
      assert.is_true(c >= 850 and c <= 1150, "server " .. i .. " got " .. c .. " of 3000")
    end
    assert.are.equal(3000, (hist[1] or 0) + (hist[2] or 0) + (hist[3] or 0))
  end)

  it("RoundRobin cycles through the servers in list order", function()
    local ns = nodes(3)
    local xc = xclient(moonrpc.Failfast, moonrpc.RoundRobin, moonrpc.multiple_servers(entries(ns)))
    local seq = picks(xc, 30)
    local want = {}
    for k = 1, 30 do want[k] = (k - 1) % 3 + 1 end
    assert.are.same(want, seq)
  end)

  it("WeightedRoundRobin with weights 5,1,1 is smooth: 1 1 2 1 3 1 1, and 500/100/100 of 700", function()
    local ns = nodes(3)
    local weights = { 5, 1, 1 }
    local d = moonrpc.multiple_servers(entries(ns, function(k) return "weight=" .. weights[k] end))
    local xc = xclient(moonrpc.Failfast, moonrpc.WeightedRoundRobin, d)
    local first = picks(xc, 7)
    assert.are.same({ 1, 1, 2, 1, 3, 1, 1 }, first)
    local _, hist = picks(xc, 693)
    for _, v in ipairs(first) do hist[v] = hist[v] + 1 end
    assert.are.same({ [1] = 500, [2] = 100, [3] = 100 }, hist)
  end)

  -- Round trips on loopback are all well under 10 ms, which rpcx's table
  -- turns into the same weight (191) for every server: the RTT ordering
  -- itself cannot be staged here. What can be checked is that the pinger
  -- measures every server, that no measurement turns into weight 0 (a
  -- failed ping, or >= 1 s), and that every server is then picked.
  it("WeightedICMP measures every server and picks them all after the pings", function()
    local ns = nodes(3)
    local d = moonrpc.multiple_servers(entries(ns))
    local xc = xclient(moonrpc.Failfast, moonrpc.WeightedICMP, d, { ping_interval = 0.05 })
    -- record what the pinger feeds the selector
    local methods = debug.getmetatable(xc.sel).__index
    local set_rtt = methods.set_rtt
    local rtts = {}
    methods.set_rtt = function(sel, addr, ms)
      if sel == xc.sel then rtts[addr] = ms end
      return set_rtt(sel, addr, ms)
    end
    defer(function() methods.set_rtt = set_rtt end)
    local pinged = xc:ping(1)
    for _, n in ipairs(ns) do
      assert.are.equal("number", type(pinged[n.addr]), "ping " .. n.addr .. ": " .. tostring(pinged[n.addr]))
    end
    assert.is_true(eventually(function()
      for _, n in ipairs(ns) do if rtts[n.addr] == nil then return false end end
      return true
    end), "the pinger did not measure every server")
    -- rpcx's CalculateWeight: <= 10 ms: 191; <= 200: 201 - rtt; < 1000: 1; else 0
    for _, n in ipairs(ns) do
      local ms = math.floor(rtts[n.addr])
      local w = ms < 0 and 0 or ms <= 10 and 191 or ms <= 200 and 201 - ms or ms < 1000 and 1 or 0
      assert.is_true(w > 0, n.addr .. " measured " .. rtts[n.addr] .. " ms: weight 0")
    end
    local _, hist = picks(xc, 300)
    for i = 1, 3 do
      assert.is_true((hist[i] or 0) >= 30, "server " .. i .. " got " .. tostring(hist[i]) .. " of 300")
    end
    assert.are.equal(300, (hist[1] or 0) + (hist[2] or 0) + (hist[3] or 0))
  end)

  it("ConsistentHash keeps a key on one server, spreads keys, and moves few on a 5th server", function()
    local ns = nodes(5)
    local four = { ns[1], ns[2], ns[3], ns[4] }
    local d = moonrpc.multiple_servers(entries(four))
    local xc = xclient(moonrpc.Failfast, moonrpc.ConsistentHash, d)
    local _, same = picks(xc, 100, "Who", { key = "the same key" })
    local n_same = 0
    for _ in pairs(same) do n_same = n_same + 1 end
    assert.are.equal(1, n_same, "one key went to several servers")

    local function where(count)
      local at = {}
      for k = 1, count do
        local r, err = call(xc, "Who", { key = "key-" .. k })
        assert.is_nil(err)
        assert.are.equal("key-" .. k, r.key)
        at[k] = r.i
      end
      return at
    end
    local spread = {}
    for _, i in ipairs(where(200)) do spread[i] = true end
    local used = 0
    for _ in pairs(spread) do used = used + 1 end
    assert.is_true(used > 1, "200 keys all went to one server")

    local before = where(400)
    assert.are.same(before, where(400)) -- stable while the list is
    d:update(entries(ns))
    local after = where(400)
    local moved, to_new, elsewhere = 0, 0, 0
    for k = 1, 400 do
      if after[k] ~= before[k] then
        moved = moved + 1
        if after[k] == 5 then to_new = to_new + 1 else elsewhere = elsewhere + 1 end
      end
    end
    assert.is_true(moved <= 100, moved .. " of 400 keys moved when a 5th server came")
    assert.is_true(to_new > 0, "the 5th server took no keys")
    assert.are.equal(0, elsewhere, "keys moved between the old servers")
  end)

  it("Closest always picks the server nearest the client's position", function()
    local cities = {
      { "Paris", 48.8566, 2.3522 }, { "Tokyo", 35.6762, 139.6503 },
      { "New York", 40.7128, -74.0060 }, { "Sydney", -33.8688, 151.2093 },
    }
    local ns = nodes(4)
    local d = moonrpc.multiple_servers(entries(ns, function(k)
      return "latitude=" .. cities[k][2] .. "&longitude=" .. cities[k][3]
    end))
    local near = {
      { 2, 35.4437, 139.6380 },  -- Yokohama: Tokyo
      { 1, 51.5074, -0.1278 },   -- London: Paris
      { 3, 42.3601, -71.0589 },  -- Boston: New York
      { 4, -37.8136, 144.9631 }, -- Melbourne: Sydney
    }
    for _, p in ipairs(near) do
      local xc = xclient(moonrpc.Failfast, moonrpc.Closest, d, { latitude = p[2], longitude = p[3] })
      local _, hist = picks(xc, 20)
      assert.are.same({ [p[1]] = 20 }, hist, "near " .. cities[p[1]][1])
    end
  end)

  it("SelectByUser gets only the live servers and its pick is used", function()
    local ns = nodes(4)
    local d = moonrpc.multiple_servers(entries(ns, function(k) return k == 4 and "state=inactive" or "" end))
    local given = {}
    local xc = xclient(moonrpc.Failfast, function(servers, service, method)
      local addrs = {}
      for k, s in ipairs(servers) do addrs[k] = s.addr end
      given[#given + 1] = { service = service, method = method, addrs = addrs }
      return servers[#servers]
    end, d)
    local _, hist = picks(xc, 10)
    assert.are.same({ [3] = 10 }, hist)
    assert.are.equal(10, #given)
    for _, g in ipairs(given) do
      assert.are.equal("Node", g.service)
      assert.are.equal("Who", g.method)
      assert.are.same({ ns[1].addr, ns[2].addr, ns[3].addr }, g.addrs)
    end
    assert.is_nil(ns[4].hits.all)
  end)
end)

describe("governance", function()
  it("group= metadata reaches only xclients of the same group", function()
    local ns = nodes(3)
    local groups = { "group=a", "group=b", "group=a" }
    local d = moonrpc.multiple_servers(entries(ns, function(k) return groups[k] end))
    local _, ha = picks(xclient(moonrpc.Failfast, moonrpc.RoundRobin, d, { group = "a" }), 10)
    assert.are.same({ [1] = 5, [3] = 5 }, ha)
    local _, hb = picks(xclient(moonrpc.Failfast, moonrpc.RoundRobin, d, { group = "b" }), 10)
    assert.are.same({ [2] = 10 }, hb)
    local _, hc = picks(xclient(moonrpc.Failfast, moonrpc.RoundRobin, d, { group = "c" }), 3)
    assert.are.same({ ["ERR:ENOSERVER"] = 3 }, hc)
    local _, hall = picks(xclient(moonrpc.Failfast, moonrpc.RoundRobin, d), 9)
    assert.are.same({ [1] = 3, [2] = 3, [3] = 3 }, hall) -- no group: every group
  end)

  it("state=inactive hides a live server until d:update makes it active", function()
    local ns = nodes(3)
    local d = moonrpc.multiple_servers(entries(ns, function(k) return k == 3 and "state=inactive" or "" end))
    local xc = xclient(moonrpc.Failover, moonrpc.RandomSelect, d)
    local _, hist = picks(xc, 60)
    assert.is_nil(hist[3])
    assert.is_nil(ns[3].hits.all)
    assert.are.equal(60, (hist[1] or 0) + (hist[2] or 0))
    d:update(entries(ns, function(k) return k == 3 and "state=active" or "" end))
    _, hist = picks(xc, 60)
    assert.is_true((hist[3] or 0) > 0, "the reactivated server got no call")
    assert.are.equal(hist[3], ns[3].hits.all)
  end)
end)

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
      assert.is_true(took < 300, "call " .. k .. " took " .. took .. " ms")
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
      assert.is_true(took >= 280 and took < 450, c[1] .. " took " .. took .. " ms")
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
    assert.is_true(took < 600, "Failtry took " .. took .. " ms with a 500 ms timeout")
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
      assert.is_true(took < 300, "fork waited " .. took .. " ms for the slow server")
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
      assert.is_true(moonrpc.now() - t0 < 20, "an open breaker took " .. (moonrpc.now() - t0) .. " ms")
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
