-- spec/faults_spec.lua: faults under load. Three servers as child processes
-- (spec/servers/cluster_server.lua), one xclient, 50 coroutines calling as
-- fast as they can for about 3 s, and one server killed (kill -9) or shut
-- down (SIGTERM) in the middle. What must hold: under Failover no call
-- fails; under Failfast the calls that fail are exactly those that were in
-- flight on the killed server, each with a connection-loss code; a graceful
-- shutdown loses no call. Each test prints its counts (they go into the
-- closing note of issue 11). Time is bounded: a call has a 5 s timeout and
-- the load is waited for at most 15 s.

local moonrpc = require "moonrpc"
local C = require "cluster_support"
local defer, child, entries, xclient = C.defer, C.child, C.entries, C.xclient
C.install(after_each)

local CALLERS = 50
local CONN_LOSS = { ECONNLOST = true, ECONNRESET = true, EPIPE = true, ECONNREFUSED = true,
                    ECONNABORTED = true }

-- Runs the loop until pred() holds or `secs` pass; returns pred().
local function wait_until(pred, secs)
  local deadline = moonrpc.now() + secs * 1000
  while not pred() and moonrpc.now() < deadline do moonrpc.sleep(0.02) end
  return pred()
end

--- Starts CALLERS coroutines that call Node.Who{id=} in a loop until
-- `st.stop`; every call gets a record in st.calls[id]: phase (what
-- st.phase was when it started), done, i (the node that answered), err,
-- tries. `method` and `args` (default Who and {}; or a function of the id
-- that returns them) name the call; args.id is set. The state is `st` when given (the callers start at once). Returns
-- the state; stop it with finish(st).
local function load(xc, method, args, st)
  st = st or {}
  for k, v in pairs { calls = {}, next = 0, ok = 0, failed = 0, retried = 0, running = 0,
                      phase = "before", stop = false } do st[k] = v end
  for _ = 1, CALLERS do
    st.running = st.running + 1
    moonrpc.spawn(function()
      while not st.stop do
        st.next = st.next + 1
        local rec = { id = st.next, phase = st.phase }
        st.calls[rec.id] = rec
        local a = { id = rec.id }
        for k, v in pairs(type(args) == "function" and args(rec.id) or args or {}) do a[k] = v end
        local call = xc:go(method or "Who", a, { timeout = 5 })
        local r, err = call:wait()
        rec.done, rec.tries = true, call.tries
        if call.tries > 0 then st.retried = st.retried + 1 end
        if r then
          st.ok, rec.i = st.ok + 1, r.i
        else
          st.failed, rec.err = st.failed + 1, err
        end
      end
      st.running = st.running - 1
    end)
  end
  defer(function() st.stop = true; wait_until(function() return st.running == 0 end, 15) end)
  return st
end

local function finish(st)
  st.stop = true
  assert.is_true(wait_until(function() return st.running == 0 end, 15),
                 st.running .. " callers still waiting 15 s after the load stopped")
end

local function three()
  local ns = { child(1), child(2), child(3) }
  return ns, moonrpc.multiple_servers(entries(ns))
end

local function failures(st)
  local out = {}
  for _, rec in pairs(st.calls) do
    if rec.err then out[#out + 1] = tostring(rec.err) end
    if #out == 5 then break end
  end
  return table.concat(out, "; ")
end

describe("faults under load", function()
  it("Failover: a server killed with kill -9 mid-run fails no call", function()
    local ns, disc = three()
    local xc = xclient(moonrpc.Failover, moonrpc.RoundRobin, disc)
    local st = load(xc)
    moonrpc.sleep(1)
    local at_kill = st.ok
    ns[1].signal("KILL")
    st.phase = "after"
    moonrpc.sleep(1.5)
    finish(st)
    local after = 0
    for _, rec in pairs(st.calls) do
      if rec.phase == "after" and rec.i == 1 then after = after + 1 end
    end
    print(string.format("\nfaults: Failover, kill -9 of 1 of 3 servers, %d callers: %d calls, " ..
                        "%d succeeded (%d before the kill), %d failed, %d retried on another server",
                        CALLERS, st.next, st.ok, at_kill, st.failed, st.retried))
    assert.are.equal(0, st.failed, failures(st))
    assert.is_true(st.ok > 1000, "only " .. st.ok .. " calls succeeded")
    assert.is_true(st.retried >= 1, "no call was in flight on the killed server")
    assert.are.equal(0, after, "a call started after the kill was answered by the killed server")
  end)

  it("Failfast: the failures are exactly the calls in flight on the killed server", function()
    local ns, disc = three()
    local victim = ns[1].addr
    -- A selector of our own (round robin) records which server each call
    -- was sent to when it starts. The xclient takes its choice while the
    -- server is healthy, so before the kill it is where the call went.
    local st = {}
    local rr = 0
    local xc = xclient(moonrpc.Failfast, function(servers, _, _, args)
      rr = rr % #servers + 1
      st.calls[args.id].sent = servers[rr].addr
      return servers[rr].addr
    end, disc)
    load(xc, "Who", nil, st)
    moonrpc.sleep(1)
    -- Stop the victim first and let the loop take in every reply it had
    -- already written, so that "in flight on it" is exact at the kill:
    -- sent to it and not answered. kill -9 takes a stopped process too.
    ns[1].signal("STOP")
    moonrpc.sleep(0.3)
    local in_flight = {}
    local n_in_flight = 0
    for id, rec in pairs(st.calls) do
      if not rec.done and rec.sent == victim then in_flight[id] = true; n_in_flight = n_in_flight + 1 end
    end
    ns[1].signal("KILL")
    st.phase = "after"
    moonrpc.sleep(1.5)
    finish(st)
    -- The calls started after the kill that the xclient still sent to the
    -- dead server (before it saw the connection drop) fail too.
    local expected, late = {}, 0
    for id in pairs(in_flight) do expected[id] = true end
    for id, rec in pairs(st.calls) do
      if rec.phase == "after" and rec.err and rec.err.address == victim then
        expected[id] = true
        late = late + 1
      end
    end
    local failed, wrong = {}, {}
    for id, rec in pairs(st.calls) do
      if rec.err then
        failed[id] = true
        if not CONN_LOSS[rec.err.code] or rec.err.address ~= victim then wrong[#wrong + 1] = tostring(rec.err) end
      end
    end
    print(string.format("\nfaults: Failfast, kill -9 of 1 of 3 servers, %d callers: %d calls, " ..
                        "%d succeeded, %d failed; in flight on the killed server at the kill: %d, " ..
                        "sent to it after the kill before the loss was seen: %d",
                        CALLERS, st.next, st.ok, st.failed, n_in_flight, late))
    assert.are.same({}, wrong)
    assert.is_true(n_in_flight >= 1, "no call was in flight on the killed server")
    assert.are.same(expected, failed)
    assert.are.equal(n_in_flight + late, st.failed)
    assert.is_true(st.ok > 1000, "only " .. st.ok .. " calls succeeded")
  end)

  it("Failover: SIGTERM (graceful shutdown) of a server under full load loses no call", function()
    local ns, disc = three()
    local xc = xclient(moonrpc.Failover, moonrpc.RoundRobin, disc)
    local st = load(xc, "Slow", function(id) return { s = id % 10 * 0.002 } end)
    -- (handlers of 0 to 18 ms: some are running when the signal comes, and
    -- answers keep coming while the server waits for the rest)
    moonrpc.sleep(1)
    local at_term = st.ok
    ns[1].signal("TERM")
    st.phase = "after"
    moonrpc.sleep(1.5)
    finish(st)
    local ok, how, code = ns[1].pipe:close()
    ns[1].pipe = nil
    print(string.format("\nfaults: Failover, SIGTERM to 1 of 3 servers, %d callers: %d calls, " ..
                        "%d succeeded (%d before the signal), %d failed, %d retried on another server",
                        CALLERS, st.next, st.ok, at_term, st.failed, st.retried))
    assert.are.equal(0, st.failed, failures(st))
    assert.is_true(st.ok > 1000, "only " .. st.ok .. " calls succeeded")
    assert.are.same({ true, "exit", 0 }, { ok, how, code }, "the server did not exit 0 after SIGTERM")
  end)

  it("SIGTERM to the only server answers every call in flight", function()
    local n = child(1)
    local xc = xclient(moonrpc.Failfast, moonrpc.RoundRobin, moonrpc.multiple_servers(entries { n }))
    local ok, failed, left = 0, {}, CALLERS
    for _ = 1, CALLERS do
      moonrpc.spawn(function()
        local r, err = xc:call("Slow", { s = 0.5 }, { timeout = 5 })
        if r and r.i == 1 then ok = ok + 1 else failed[#failed + 1] = tostring(err) end
        left = left - 1
      end)
    end
    moonrpc.sleep(0.2) -- every call is in the handler's sleep now
    n.signal("TERM")
    assert.is_true(wait_until(function() return left == 0 end, 10), left .. " calls never ended")
    local pok, how, code = n.pipe:close()
    n.pipe = nil
    print(string.format("\nfaults: SIGTERM to the only server with %d calls in flight: %d answered, %d failed",
                        CALLERS, ok, #failed))
    assert.are.same({}, failed)
    assert.are.equal(CALLERS, ok)
    assert.are.same({ true, "exit", 0 }, { pok, how, code })
  end)
end)
