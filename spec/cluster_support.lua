--- Shared helpers of the cluster specs (cluster_select_spec.lua and
-- cluster_fail_spec.lua). Together they cover the cluster client
-- (lua/moonrpc/xclient.lua, health.lua,
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
local S = require "support"
local assert = require "luassert" -- busted gives its assert to spec files only

local M = {}
-- Helpers call one another through these upvalues, set as each is defined.
local defer, node_handlers, node, nodes, dead_addr, entries, xclient, call, picks, sum_hits, child

local here = debug.getinfo(1, "S").source:match("^@(.*)$"):match("^(.*)/[^/]*$") or "."
local NODE_SCRIPT = here .. "/servers/cluster_server.lua"

-- ---- cleanup ---------------------------------------------------------------

local cleanups = {}

--- Runs `fn` after the current test, pass or fail (last registered first).
defer = function(fn)
  cleanups[#cleanups + 1] = fn
  return fn
end

--- Registers, with busted's after_each (passed in: busted gives it to spec
-- files only), the hook that runs the deferred cleanups; each spec
-- file using these helpers calls it once.
function M.install(after_each)
  after_each(function()
    local errs = {}
    for i = #cleanups, 1, -1 do
      local ok, e = pcall(cleanups[i])
      if not ok then errs[#errs + 1] = tostring(e) end
    end
    cleanups = {}
    assert.are.same({}, errs, "cleanup failed")
  end)
end

-- ---- helpers ---------------------------------------------------------------

local eventually = S.eventually

--- Node i's handlers (the same as cluster_server.lua's); `hits` counts
-- invocations per method and in all.
node_handlers = function(i, hits)
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
node = function(i, address)
  local n = { i = i, hits = {} }
  n.s = moonrpc.server()
  n.s:register("Node", node_handlers(i, n.hits))
  local addr, err = n.s:serve(address or "tcp@127.0.0.1:0")
  assert(addr, tostring(err))
  n.addr = addr
  defer(function() n.s:close() end)
  return n
end

nodes = function(count)
  local list = {}
  for i = 1, count do list[i] = node(i) end
  return list
end

--- A loopback TCP address nobody listens on (connections are refused).
dead_addr = S.dead_port

--- The discovery entries of `list` (nodes or address strings), with
-- metadata meta(i, n) when given.
entries = function(list, meta)
  local out = {}
  for k, n in ipairs(list) do
    local addr = type(n) == "string" and n or n.addr
    out[k] = { addr = addr, metadata = meta and meta(k, n) or "" }
  end
  return out
end

--- An xclient of "Node", closed after the test.
xclient = function(mode, selector, disc, opts)
  local xc = moonrpc.xclient("Node", mode, selector, disc, opts)
  defer(function() xc:close() end)
  return xc
end

--- xc:call, but a call that hangs fails the test instead of the run: it
-- is waited for at most 5 s (then nil, ETIMEDOUT "wait timed out").
call = function(xc, method, args, opts)
  local c = xc:go(method, args, opts)
  local r, err, meta = c:wait(5)
  if not c:is_ready() then c:discard() end
  return r, err, meta
end

--- Makes `count` calls of `method` and returns the picks (reply.i, or
-- "ERR:"..code) in order and a histogram.
picks = function(xc, count, method, args)
  local seq, hist = {}, {}
  for k = 1, count do
    local r, err = call(xc, method or "Who", args or {})
    local v = r and r.i or ("ERR:" .. tostring(err and err.code))
    seq[k] = v
    hist[v] = (hist[v] or 0) + 1
  end
  return seq, hist
end

sum_hits = function(list, method)
  local total = 0
  for _, n in ipairs(list) do total = total + (n.hits[method or "all"] or 0) end
  return total
end

-- ---- child processes -------------------------------------------------------

--- Starts node `i` as a child process (on `port`, or any free port);
-- returns { pid=, addr=, i= }; it is killed after the test.
child = function(i, port)
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


M.defer = defer
M.node_handlers = node_handlers
M.node = node
M.nodes = nodes
M.dead_addr = dead_addr
M.entries = entries
M.xclient = xclient
M.call = call
M.picks = picks
M.sum_hits = sum_hits
M.child = child

return M
