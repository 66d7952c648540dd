--- moonrpc.xclient: rpcx's XClient: discovery, selector, fail mode,
-- broadcast and fork, over pooled connections.
--
--     local d  = moonrpc.multiple_servers{ "tcp@127.0.0.1:8972", "tcp@127.0.0.1:8973" }
--     local xc = moonrpc.xclient("Arith", moonrpc.Failover, moonrpc.RoundRobin, d)
--     local reply, err = xc:call("Mul", { A = 7, B = 8 })   -- reply.C == 56
--     local call = xc:go("Mul", { A = 2, B = 3 })           -- in flight
--     local reply, err = call:wait()
--
-- Fail modes apply to go() as well as call() (rpcx's Go ignores them, rpcx
-- issue #94). Only failures of the connection are retried, never an error
-- the service returned, and never past the call's own timeout.
-- @module moonrpc.xclient

local core = require "moonrpc.core"
local sched = require "moonrpc.sched"
local errors = require "moonrpc.errors"
local discovery = require "moonrpc.discovery"
local calls = require "moonrpc.call"
local health = require "moonrpc.health"
local options = require "moonrpc.options"

local M = {}

-- Fail modes and selectors, by rpcx's names.
M.fail_modes = { Failover = "Failover", Failfast = "Failfast", Failtry = "Failtry", Failbackup = "Failbackup" }
M.selectors = {
  RandomSelect = "RandomSelect", RoundRobin = "RoundRobin",
  WeightedRoundRobin = "WeightedRoundRobin", WeightedICMP = "WeightedICMP",
  ConsistentHash = "ConsistentHash", Closest = "Closest", SelectByUser = "SelectByUser",
}

-- Server pushes reach the xclient that owns the connection.
local pushers = setmetatable({}, { __mode = "v" })
sched.push_handler = function(client_id, service, method, value, meta)
  local xc = pushers[client_id]
  if xc and xc.opts.on_push then xc.opts.on_push(service, method, value, meta) end
end

local XClient = {}
XClient.__index = XClient
XClient.__name = "moonrpc.xclient"

local SERIALIZE = { msgpack = 3, json = 1, raw = 0, none = 0 }

local function check_serialize(v, level)
  if v == nil then return nil end
  if type(v) == "number" then return v end
  local s = SERIALIZE[v]
  if not s then error("bad serialize '" .. tostring(v) .. "' (msgpack, json or raw)", level + 1) end
  return s
end

--- rpcx's NewXClient. `selector` is a selector name or a function
-- `fn(servers, service, method, args) -> address` (SelectByUser).
-- `opts`: timeout (seconds, per call), retries (default 3), serialize,
-- compress ("gzip"), auth (sent as __AUTH), group, backup_latency (seconds,
-- Failbackup, default 0.01), breaker = { failures, window }, pool
-- (connections per server, default 1), latitude/longitude (Closest),
-- ping_interval (WeightedICMP, default 5 s), heartbeat, heartbeat_timeout,
-- connect_timeout, on_push, and the named limits.
function M.new(service, fail_mode, selector, disc, opts)
  if type(service) ~= "string" then error("bad argument #1 to 'xclient' (service name expected)", 2) end
  if fail_mode ~= nil and not M.fail_modes[fail_mode] then
    error("bad argument #2 to 'xclient' (unknown fail mode " .. tostring(fail_mode) .. ")", 2)
  end
  local user
  if type(selector) == "function" then
    user, selector = selector, "SelectByUser"
  elseif selector ~= nil and not M.selectors[selector] then
    error("bad argument #3 to 'xclient' (unknown selector " .. tostring(selector) .. ")", 2)
  end
  if not discovery.is(disc) then
    error("bad argument #4 to 'xclient' (discovery expected: moonrpc.peer2peer or moonrpc.multiple_servers)", 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #5 to 'xclient' (table expected)", 2) end
  options.check(opts, options.xclient, "xclient options", 2)
  check_serialize(opts.serialize, 2)
  selector = selector or "RandomSelect"
  user = user or opts.select
  if selector == "SelectByUser" and type(user) ~= "function" then
    error("bad argument #3 to 'xclient' (SelectByUser needs a function: opts.select)", 2)
  end
  if opts.pool ~= nil and (math.type(opts.pool) ~= "integer" or opts.pool < 1) then
    error("bad opts.pool (positive integer expected)", 2)
  end
  local self = setmetatable({
    service = service, fail_mode = fail_mode or "Failtry", selector = selector, user = user,
    discovery = disc, opts = opts, conns = {}, version = nil,
    health = health.new(opts.breaker),
    -- the C selector picks by the rules of `selector` among the servers that
    -- pass rpcx's group/state filter (SelectByUser uses it for the filter)
    sel = core.selector_new(selector == "SelectByUser" and "RandomSelect" or selector,
                            math.random(0, math.maxinteger)),
  }, XClient)
  if opts.latitude or opts.longitude then
    self.sel:set_point(assert(tonumber(opts.latitude)), assert(tonumber(opts.longitude)))
  end
  return self
end

-- ---- servers, connections, selection -------------------------------------------

-- Applies a new discovery list to the selector.
function XClient:_sync()
  local list, version = self.discovery:get()
  if version == self.version then return end
  self.version = version
  self.sel:update(list, self.opts.group)
  self.health:retain(list)
  if self.selector == "WeightedICMP" then self:_start_pinger() end
end

function XClient:_conn(addr)
  local pool = self.conns[addr]
  if not pool then
    pool = { n = 0 }
    self.conns[addr] = pool
  end
  local size = self.opts.pool or 1
  if pool.n < size then
    local id = sched.id()
    local c, code, msg = core.client_new(addr, id, self.opts)
    if not c then return nil, errors.new(code, msg .. " (" .. addr .. ")") end
    pushers[id] = self
    pool.n = pool.n + 1
    pool[pool.n] = c
    return c
  end
  pool.next = (pool.next or 0) % size + 1
  return pool[pool.next]
end

-- Picks a server for an attempt (see the order below).
function XClient:_pick(method, args, avoid)
  self:_sync()
  local addrs = self.sel:addresses()
  if #addrs == 0 then
    return nil, errors.new("ENOSERVER", "no server available for " .. self.service)
  end
  local choice
  if self.user then
    local servers = {}
    local by = {}
    for _, s in ipairs(self.discovery:get()) do by[s.addr] = s end
    for i, a in ipairs(addrs) do servers[i] = by[a] or { addr = a, metadata = "", meta = {} } end
    choice = self.user(servers, self.service, method, args)
    if type(choice) == "table" then choice = choice.addr end
    if type(choice) == "number" then choice = addrs[choice] end
  else
    local payload
    if self.selector == "ConsistentHash" then payload = core.encode(args, "msgpack") end
    choice = self.sel:select(self.service, method, payload, avoid)
  end
  -- The selector's choice if it is fine; else any other fine server; else
  -- one that is backing off (better than nothing); never an open breaker.
  -- `avoid` comes last, and only when nothing else is left.
  local now, h = core.now(), self.health
  local order = {}
  if choice and choice ~= avoid then order[1] = choice end
  for _, a in ipairs(addrs) do
    if a ~= choice and a ~= avoid then order[#order + 1] = a end
  end
  if avoid then
    for _, a in ipairs(addrs) do
      if a == avoid then order[#order + 1] = avoid break end
    end
  end
  for _, want in ipairs { "ok", "down" } do
    for _, a in ipairs(order) do
      if h:status(a, now, false) == want then
        h:status(a, now) -- takes a half-open breaker's trial call
        return a
      end
    end
  end
  return nil, errors.new("EBREAKER", "no server available for " .. self.service ..
                         ": circuit breaker open on " .. #order .. " server(s)")
end

-- Measures round trips with heartbeat frames for WeightedICMP.
function XClient:_start_pinger()
  if self.pinging then return end
  self.pinging = true
  local function round()
    if self.closed then return end
    for _, addr in ipairs(self.sel:addresses()) do
      local conn = self:_conn(addr)
      if conn then
        local id = sched.expect(function(code)
          if code == nil and not self.closed then
            local _, _, rtt_us = conn:info()
            self.sel:set_rtt(addr, rtt_us / 1000)
          end
        end)
        if not conn:ping(1, id) then sched.forget(id) end
      end
    end
    sched.after(self.opts.ping_interval or 5, round, true)
  end
  round()
end

-- ---- calls ---------------------------------------------------------------------------------

local function call_opts(self, opts, level)
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #3 (options table expected)", level + 1) end
  options.check(opts, options.call, "call options", level + 1)
  local base = self.opts
  local meta = opts.metadata
  if base.auth then
    local m = {}
    if meta then for k, v in pairs(meta) do m[k] = v end end
    m.__AUTH = base.auth
    meta = m
  end
  local timeout = opts.timeout or base.timeout
  if timeout ~= nil and (type(timeout) ~= "number" or timeout <= 0) then
    error("bad timeout (positive number of seconds expected)", level + 1)
  end
  local compress = opts.compress or base.compress
  local o = {
    meta = meta, timeout = timeout,
    serialize = check_serialize(opts.serialize, level + 1) or check_serialize(base.serialize, level + 1) or 3,
    gzip = compress == "gzip" or compress == true,
    retries = opts.retries or base.retries or 3,
    backup_latency = opts.backup_latency or base.backup_latency or 0.01,
  }
  if timeout then o.deadline = core.now() + timeout * 1000 end
  return o
end

-- Sends one request of `call` to `addr`; `answer(addr, code, msg, value,
-- meta)` runs once with its outcome, unless the call ended first.
local function send(self, call, addr, method, args, o, answer)
  local conn, err = self:_conn(addr)
  if not conn then return answer(addr, err.code, err.message) end
  local remaining = o.deadline and (o.deadline - core.now()) / 1000
  if remaining and remaining <= 0 then return answer(addr, "ETIMEDOUT", "call timed out") end
  local id = sched.expect(function(code, msg, value, meta)
    if not call.fut.done then answer(addr, code, msg, value, meta) end
  end)
  local seq, code, msg = conn:call(self.service, method, args, o.serialize, o.meta,
                                   remaining, o.gzip, false, id)
  if not seq then
    sched.forget(id)
    return answer(addr, code, msg)
  end
  call:track(conn, seq)
end

local function time_left(o)
  return o.deadline == nil or o.deadline > core.now()
end

-- Runs `call` under the xclient's fail mode.
local function drive(self, call, method, args, o)
  local mode = self.fail_mode
  local inflight = 0
  local go

  local function answer(addr, code, msg, value, meta)
    inflight = inflight - 1
    -- A server shutting down refused the request unrun: a failure of this
    -- server, not of the call, so Failover goes on elsewhere.
    if code == "EREMOTE" and msg == errors.SHUTTING_DOWN then code = "ESHUTDOWN" end
    if code == nil or code == "EREMOTE" then
      self.health:success(addr)
      if code == nil then return call:finish(value, nil, meta) end
      return call:finish(nil, errors.new(code, msg, { payload = value, address = addr }), meta)
    end
    if code == "EENCODE" or code == "EDEPTH" or code == "ECANCELED" then
      return call:finish(nil, errors.new(code, msg))
    end
    self.health:failure(addr, code ~= "ETIMEDOUT")
    local e = errors.new(code, msg .. " (" .. addr .. ")", { address = addr })
    if inflight > 0 then call.last_err = e; return end -- Failbackup: the other may answer
    call.tries = call.tries + 1
    if mode ~= "Failfast" and errors.retryable(code) and call.tries <= o.retries and time_left(o) then
      if mode == "Failtry" then return go(addr) end
      local next_addr, perr = self:_pick(method, args, addr)
      if next_addr then return go(next_addr) end
      e = perr
    end
    call:finish(nil, e)
  end

  go = function(addr)
    inflight = inflight + 1
    send(self, call, addr, method, args, o, answer)
  end

  local addr, err = self:_pick(method, args, nil)
  if not addr then return call:finish(nil, err) end
  go(addr)
  if mode == "Failbackup" and not call.fut.done then
    sched.after(o.backup_latency, function()
      if call.fut.done then return end
      local b = self:_pick(method, args, addr)
      if b and b ~= addr then go(b) end
    end)
  end
end

local function start(self, what, method, args, opts)
  if self.closed then error("moonrpc: " .. what .. " on a closed xclient", 3) end
  if type(method) ~= "string" then error("bad argument #1 to '" .. what .. "' (method name expected)", 3) end
  local o = call_opts(self, opts, 3)
  local call = calls.new()
  drive(self, call, method, args, o)
  return call
end

--- rpcx's Go: starts a call and returns a call object at once.
function XClient:go(method, args, opts)
  local call = start(self, "go", method, args, opts) -- not a tail call: misuse
  return call                                         -- raises at the caller's line
end

--- rpcx's Call: returns reply, err, meta. `opts`: timeout, metadata,
-- serialize, compress, retries, backup_latency.
function XClient:call(method, args, opts)
  local call = start(self, "call", method, args, opts)
  call.fut:wait()
  return call.fut:get()
end

--- rpcx's Oneshot: sends a oneway request; returns true or nil, err once
-- the request is queued (no reply ever comes).
function XClient:oneshot(method, args, opts)
  if type(method) ~= "string" then error("bad argument #1 to 'oneshot' (method name expected)", 2) end
  local o = call_opts(self, opts, 2)
  local addr, err = self:_pick(method, args, nil)
  if not addr then return nil, err end
  local conn
  conn, err = self:_conn(addr)
  if not conn then return nil, err end
  local seq, code, msg = conn:call(self.service, method, args, o.serialize, o.meta, nil, o.gzip, true)
  if not seq then return nil, errors.new(code, msg) end
  return true
end

-- Sends to every server at once; returns a list of
-- { address =, ok =, reply =, error =, meta = }, in the selector's order
-- (ok is true or false, never nil).
local function fan_out(self, what, method, args, opts, first_success)
  if self.closed then error("moonrpc: " .. what .. " on a closed xclient", 3) end
  if type(method) ~= "string" then error("bad argument #1 to '" .. what .. "' (method name expected)", 3) end
  local o = call_opts(self, opts, 3)
  self:_sync()
  local addrs = self.sel:addresses()
  local results, left, all = {}, #addrs, sched.future()
  local parts = {}
  for i, addr in ipairs(addrs) do
    local part = calls.new()
    parts[i] = part
    results[i] = { address = addr, ok = false } -- ok = true once it succeeds
    send(self, part, addr, method, args, o, function(_, code, msg, value, meta)
      local r = results[i]
      if code == nil then
        self.health:success(addr)
        r.ok, r.reply, r.meta = true, value, meta
      else
        if code ~= "EREMOTE" then self.health:failure(addr, code ~= "ETIMEDOUT") end
        r.error = errors.new(code, code == "EREMOTE" and msg or (msg .. " (" .. addr .. ")"),
                             { address = addr, payload = value })
      end
      left = left - 1
      if left == 0 or (first_success and code == nil) then all:set() end
      part:finish(value)
    end)
  end
  if left > 0 then all:wait() end
  for _, p in ipairs(parts) do p:finish(nil) end -- stop what is still in flight
  return results
end

--- rpcx's Broadcast: calls every server; succeeds only if all succeed.
-- Returns a reply (the first server's), or nil and the first error.
function XClient:broadcast(method, args, opts)
  local results = fan_out(self, "broadcast", method, args, opts, false)
  if #results == 0 then return nil, errors.new("ENOSERVER", "no server available for " .. self.service) end
  for _, r in ipairs(results) do
    if r.error then return nil, r.error end
  end
  return results[1].reply, nil, results[1].meta
end

--- rpcx's Fork: calls every server; returns the first success, or nil and
-- the last error when all fail.
function XClient:fork(method, args, opts)
  local results = fan_out(self, "fork", method, args, opts, true)
  local err
  for _, r in ipairs(results) do
    if r.ok then return r.reply, nil, r.meta end
    err = r.error or err
  end
  return nil, err or errors.new("ENOSERVER", "no server available for " .. self.service)
end

--- rpcx's Inform: calls every server; returns a list of
-- { address =, ok =, reply =, error =, meta = } (one per server): ok is
-- true with reply and meta, or false with error.
function XClient:inform(method, args, opts)
  local results = fan_out(self, "inform", method, args, opts, false) -- not a tail call (see go)
  return results
end

--- Sends a heartbeat to every known server; returns { [addr] = rtt_us or err }.
function XClient:ping(timeout)
  self:_sync()
  local out, futs = {}, {}
  for _, addr in ipairs(self.sel:addresses()) do
    local conn, err = self:_conn(addr)
    if conn then
      local f = sched.future()
      local id = sched.expect(function(code, msg)
        if code then f:set(errors.new(code, msg)) else f:set(select(3, conn:info())) end
      end)
      local ok, code, msg = conn:ping(timeout or 5, id)
      if not ok then sched.forget(id); f:set(errors.new(code, msg)) end
      futs[addr] = f
    else
      out[addr] = err
    end
  end
  for addr, f in pairs(futs) do f:wait(); out[addr] = f:get() end
  return out
end

--- Closes every connection; calls in flight end with ECLOSED.
function XClient:close()
  self.closed = true
  for addr, pool in pairs(self.conns) do
    for i = 1, pool.n do pool[i]:close() end
    self.conns[addr] = nil
  end
end

XClient.__close = XClient.close

return M
