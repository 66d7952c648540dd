--- moonrpc.xclient: discovery, xclients and calls, mapped to rpcx's client.
--
--     local d  = moonrpc.peer2peer("tcp@127.0.0.1:8972")
--     local xc = moonrpc.xclient("Arith", moonrpc.Failtry, moonrpc.RandomSelect, d)
--     local reply, err = xc:call("Mul", { A = 7, B = 8 })   -- reply.C == 56
--     local call = xc:go("Mul", { A = 2, B = 3 })           -- in flight
--     local reply, err = call:wait()
--
-- Every call ends exactly once: a reply, a remote error (code EREMOTE), a
-- timeout, a cancel (discard) or a lost connection.
-- @module moonrpc.xclient

local core = require "moonrpc.core"
local sched = require "moonrpc.sched"
local errors = require "moonrpc.errors"

local M = {}

-- Fail modes and selectors, by rpcx's names.
M.fail_modes = { Failover = "Failover", Failfast = "Failfast", Failtry = "Failtry", Failbackup = "Failbackup" }
M.selectors = {
  RandomSelect = "RandomSelect", RoundRobin = "RoundRobin",
  WeightedRoundRobin = "WeightedRoundRobin", WeightedICMP = "WeightedICMP",
  ConsistentHash = "ConsistentHash", Closest = "Closest", SelectByUser = "SelectByUser",
}

-- ---- discovery --------------------------------------------------------------------

--- Parses rpcx metadata "weight=10&group=a" into a table.
function M.parse_meta(s)
  local t = {}
  for pair in (s or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    t[k] = v
  end
  return t
end

local Discovery = {}
Discovery.__index = Discovery

local function normalize(list)
  local out = {}
  for i, s in ipairs(list) do
    local addr, meta
    if type(s) == "string" then addr, meta = s, ""
    elseif type(s) == "table" then addr, meta = s.addr or s[1], s.metadata or s[2] or ""
    end
    if type(addr) ~= "string" or type(meta) ~= "string" then
      error("bad server entry #" .. i .. " (string or {addr=, metadata=} expected)", 3)
    end
    if not addr:find("@", 1, true) then addr = "tcp@" .. addr end
    out[#out + 1] = { addr = addr, metadata = meta, meta = M.parse_meta(meta) }
  end
  return out
end

--- rpcx's NewPeer2PeerDiscovery: one fixed server.
function M.peer2peer(addr, metadata)
  if type(addr) ~= "string" then error("bad argument #1 to 'peer2peer' (address expected)", 2) end
  return setmetatable({ servers = normalize({ { addr = addr, metadata = metadata } }) }, Discovery)
end

--- rpcx's NewMultipleServersDiscovery: a list you can update.
function M.multiple_servers(list)
  if type(list) ~= "table" then error("bad argument #1 to 'multiple_servers' (table expected)", 2) end
  return setmetatable({ servers = normalize(list) }, Discovery)
end

--- Replaces the server list; xclients see it on their next call.
function Discovery:update(list)
  self.servers = normalize(list)
  self.version = (self.version or 0) + 1
end

function Discovery:get()
  return self.servers
end

-- ---- connections -------------------------------------------------------------------

local clients_by_id = setmetatable({}, { __mode = "v" })

sched.push_handler = function(client_id, service, method, value, meta)
  local c = clients_by_id[client_id]
  local xc = c and c._xclient
  if xc and xc.on_push then xc.on_push(service, method, value, meta) end
end

-- ---- calls -----------------------------------------------------------------------------

local Call = {}
Call.__index = Call
Call.__name = "moonrpc.call"

--- Waits for the call's end. Returns reply, err, meta. With `timeout`
-- (seconds) it may return nil, ETIMEDOUT while the call goes on.
function Call:wait(timeout)
  if not self.fut:wait(timeout) then
    return nil, errors.new("ETIMEDOUT", "wait timed out; the call is still in flight")
  end
  return self.fut:get()
end

function Call:is_ready()
  return self.fut.done
end

--- The result if ready: reply, err, meta; else nil, EPENDING.
function Call:result()
  if not self.fut.done then return nil, errors.new("EPENDING", "call not finished") end
  return self.fut:get()
end

--- Gives up on the call: it ends now with ECANCELED; a late reply is
-- ignored.
function Call:discard()
  if self.fut.done then return false end
  self.canceled = true
  if self.conn and self.seq then self.conn:cancel(self.seq) end
  self.fut:set(nil, errors.new("ECANCELED", "call canceled"))
  return true
end

-- ---- the xclient ---------------------------------------------------------------------------

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

--- rpcx's NewXClient. `opts`: timeout (seconds, per call), retries
-- (Failtry/Failover, default 3), serialize, compress ("gzip"), auth (sent
-- as __AUTH), heartbeat / heartbeat_timeout (seconds), connect_timeout,
-- group, and the named limits.
function M.new(service, fail_mode, selector, discovery, opts)
  if type(service) ~= "string" then error("bad argument #1 to 'xclient' (service name expected)", 2) end
  if fail_mode ~= nil and not M.fail_modes[fail_mode] then
    error("bad argument #2 to 'xclient' (unknown fail mode " .. tostring(fail_mode) .. ")", 2)
  end
  if selector ~= nil and type(selector) ~= "function" and not M.selectors[selector] then
    error("bad argument #3 to 'xclient' (unknown selector " .. tostring(selector) .. ")", 2)
  end
  if getmetatable(discovery) ~= Discovery then
    error("bad argument #4 to 'xclient' (discovery expected: moonrpc.peer2peer or moonrpc.multiple_servers)", 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #5 to 'xclient' (table expected)", 2) end
  check_serialize(opts.serialize, 2)
  return setmetatable({
    service = service, fail_mode = fail_mode or "Failtry", selector = selector or "RandomSelect",
    discovery = discovery, opts = opts, conns = {}, rr = 0,
  }, XClient)
end

function XClient:_conn(addr)
  local c = self.conns[addr]
  if c then return c end
  local id = sched.id()
  local err_code, err_msg
  c, err_code, err_msg = core.client_new(addr, id, self.opts)
  if not c then return nil, errors.new(err_code, err_msg) end
  clients_by_id[id] = c
  self.conns[addr] = c
  return c
end

-- Picks a server for an attempt, skipping `avoid` when others exist.
function XClient:_select(avoid)
  local list = self.discovery:get()
  local group = self.opts.group
  local live = {}
  for _, s in ipairs(list) do
    if s.meta.state ~= "inactive" and (group == nil or s.meta.group == group) and s.addr ~= avoid then
      live[#live + 1] = s
    end
  end
  if #live == 0 and avoid then return self:_select(nil) end
  if #live == 0 then return nil end
  if self.selector == "RoundRobin" then
    self.rr = self.rr % #live + 1
    return live[self.rr]
  end
  return live[math.random(#live)]
end

local function call_opts(self, opts, level)
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #3 (options table expected)", level + 1) end
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
  return {
    meta = meta, timeout = timeout,
    serialize = check_serialize(opts.serialize, level + 1) or check_serialize(base.serialize, level + 1) or 3,
    gzip = (opts.compress or base.compress) == "gzip" or (opts.compress or base.compress) == true,
    retries = opts.retries or base.retries or 3,
  }
end

-- One attempt of `call`; on a retryable failure it starts the next one
-- according to the fail mode, without ever going past the call's deadline.
local function attempt(self, call, method, args, o, avoid)
  local server = self:_select(avoid)
  if not server then
    call.fut:set(nil, errors.new("ENOSERVER", "no server available for " .. self.service))
    return
  end
  local conn, err = self:_conn(server.addr)
  local remaining = o.deadline and (o.deadline - core.now()) / 1000
  local function retry(e)
    call.tries = call.tries + 1
    local mode = self.fail_mode
    if mode ~= "Failfast" and errors.retryable(e.code) and call.tries <= o.retries
       and not call.canceled and (remaining == nil or o.deadline > core.now()) then
      return attempt(self, call, method, args, o, mode == "Failover" and server.addr or nil)
    end
    call.fut:set(nil, e)
  end
  if not conn then return retry(err) end
  local id = sched.expect(function(code, msg, value, meta)
    if call.canceled then return end
    if code == nil then
      call.fut:set(value, nil, meta)
    elseif code == "EREMOTE" then
      call.fut:set(nil, errors.new(code, msg, { payload = value, address = server.addr }), meta)
    else
      retry(errors.new(code, msg .. " (" .. server.addr .. ")", { address = server.addr }))
    end
  end)
  local seq, code, msg = conn:call(self.service, method, args, o.serialize, o.meta,
                                   remaining and math.max(remaining, 0.001), o.gzip, false, id)
  if not seq then
    sched.forget(id)
    if code == "EENCODE" or code == "EDEPTH" then return call.fut:set(nil, errors.new(code, msg)) end
    return retry(errors.new(code, msg .. " (" .. server.addr .. ")", { address = server.addr }))
  end
  call.conn, call.seq = conn, seq
end

local function start(self, what, method, args, opts)
  if type(method) ~= "string" then error("bad argument #1 to '" .. what .. "' (method name expected)", 3) end
  local o = call_opts(self, opts, 3)
  if o.timeout then o.deadline = core.now() + o.timeout * 1000 end
  local call = setmetatable({ fut = sched.future(), tries = 0 }, Call)
  attempt(self, call, method, args, o, nil)
  return call
end

--- rpcx's Go: starts a call and returns a call object at once.
function XClient:go(method, args, opts)
  return start(self, "go", method, args, opts)
end

--- rpcx's Call: returns reply, err, meta. `opts`: timeout, metadata,
-- serialize, compress, retries.
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
  local server = self:_select(nil)
  if not server then return nil, errors.new("ENOSERVER", "no server available for " .. self.service) end
  local conn, err = self:_conn(server.addr)
  if not conn then return nil, err end
  local seq, code, msg = conn:call(self.service, method, args, o.serialize, o.meta, nil, o.gzip, true)
  if not seq then return nil, errors.new(code, msg) end
  return true
end

--- Sends a heartbeat to every known server; returns { [addr] = rtt_us or err }.
function XClient:ping(timeout)
  local out, futs = {}, {}
  for _, s in ipairs(self.discovery:get()) do
    local conn, err = self:_conn(s.addr)
    if conn then
      local f = sched.future()
      local id = sched.expect(function(code, msg)
        if code then f:set(errors.new(code, msg)) else f:set(select(3, conn:info())) end
      end)
      local ok, code, msg = conn:ping(timeout or 5, id)
      if not ok then sched.forget(id); f:set(errors.new(code, msg)) end
      futs[s.addr] = f
    else
      out[s.addr] = err
    end
  end
  for addr, f in pairs(futs) do f:wait(); out[addr] = f:get() end
  return out
end

--- Closes every connection; calls in flight end with ECLOSED.
function XClient:close()
  for addr, c in pairs(self.conns) do
    c:close()
    self.conns[addr] = nil
  end
end

XClient.__close = XClient.close

M.Discovery = Discovery
return M
