-- spec/cluster_select_spec.lua: the cluster client's discovery, selectors
-- and governance over 3 to 5 servers on loopback (helpers in
-- spec/cluster_support.lua).

local moonrpc = require "moonrpc"
local C = require "cluster_support"
local S = require "support"
local eventually = S.eventually
local defer, node_handlers, node, nodes, dead_addr, entries, xclient, call, picks, sum_hits, child =
  C.defer, C.node_handlers, C.node, C.nodes, C.dead_addr, C.entries, C.xclient, C.call, C.picks, C.sum_hits, C.child
C.install(after_each)

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
