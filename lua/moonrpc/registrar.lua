--- moonrpc.registrar: third-party registration. It health-checks the rpcx
-- instances a configuration lists, with heartbeat frames, and keeps a
-- registry in step with them: an instance is registered after `rise`
-- consecutive successful checks and unregistered after `fall` consecutive
-- failures, as HAProxy's `inter`/`rise`/`fall` server checks do (Consul
-- calls them interval, success_before_passing, failures_before_critical).
--
--     local registrar = require "moonrpc.registrar"
--     local r = assert(registrar.new{
--       registry = "etcd://127.0.0.1:2379/rpcx_test",  -- a URL or a moonrpc.registry
--       interval = 2, timeout = 1, rise = 1, fall = 2, ttl = 10,
--       instances = {
--         { service = "Arith", addr = "tcp@127.0.0.1:8972", meta = "weight=10&group=a" },
--         { service = { "Arith", "Echo" }, addr = "tcp@127.0.0.1:8973" },
--       },
--     })
--     r:start()          -- checks run in coroutines on the loop
--     ...
--     r:stop()           -- unregisters what it registered, closes the registry
--
-- Each instance gets one heartbeat every `interval` seconds (never more, up
-- or down), and a check fails when no echo comes within `timeout`. Every
-- transition is logged in one line ("registrar: Arith tcp@127.0.0.1:8972
-- up, registered"). Entries are written under a lease of `ttl` seconds that
-- the registry keeps alive while the registrar runs, so if the registrar
-- itself dies its entries expire. An instance that is never up is never
-- registered.
-- @module moonrpc.registrar

local core = require "moonrpc.core"
local sched = require "moonrpc.sched"
local errors = require "moonrpc.errors"
local registry = require "moonrpc.registry"

local M = {}

--- The defaults of the tunable fields (seconds, and check counts).
M.defaults = { interval = 2, timeout = 1, rise = 1, fall = 2, ttl = 10 }

-- ---- configuration ----------------------------------------------------------

local function seconds(v)
  return type(v) == "number" and v > 0 and v <= 86400
end

local function count(v)
  local n = math.tointeger(v)
  return n ~= nil and n >= 1 and n <= 1000000
end

-- field -> { test, what it must be }; valid at the top and per instance.
local TUNABLES = {
  interval = { seconds, "a number of seconds > 0" },
  timeout = { seconds, "a number of seconds > 0" },
  rise = { count, "an integer >= 1" },
  fall = { count, "an integer >= 1" },
  ttl = { count, "an integer number of seconds >= 1" },
}
local TOP = { registry = true, instances = true }
local PER = { service = true, addr = true, meta = true, metadata = true }

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v) .. " (" .. type(v) .. ")"
end

local function escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- Metadata as rpcx writes it: a query string, or a table of values
-- (encoded with sorted keys).
local function meta_string(m)
  if m == nil then return "" end
  if type(m) == "string" then return m end
  if type(m) ~= "table" then return nil end
  local keys = {}
  for k, v in pairs(m) do
    if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number") then return nil end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  for i, k in ipairs(keys) do keys[i] = escape(k) .. "=" .. escape(m[k]) end
  return table.concat(keys, "&")
end

local function bad(field, want, got)
  return nil, ("config: field '%s': expected %s, got %s"):format(field, want, show(got))
end

--- Checks a configuration table. Returns its normalized form
-- { registry =, instances = { { services =, addr =, meta =, interval =,
-- timeout =, rise =, fall =, ttl = }, ... } }, or nil and a message that
-- names the field at fault.
function M.check(cfg)
  if type(cfg) ~= "table" then return nil, "config: expected a table, got " .. show(cfg) end
  for k in pairs(cfg) do
    if not TOP[k] and not TUNABLES[k] then return nil, "config: unknown field '" .. tostring(k) .. "'" end
  end
  local out = { instances = {} }
  local reg = cfg.registry
  if not (type(reg) == "string" and reg:match("^%a+://.") or registry.is(reg)) then
    return bad("registry", "a URL like etcd://127.0.0.1:2379/rpcx_test or redis://host:port/base", reg)
  end
  out.registry = reg
  local base = {}
  for k, t in pairs(TUNABLES) do
    local v = cfg[k]
    if v == nil then v = M.defaults[k] elseif not t[1](v) then return bad(k, t[2], v) end
    base[k] = v
  end
  local list = cfg.instances
  if type(list) ~= "table" or #list == 0 then
    return bad("instances", "a non-empty list of { service =, addr = }", list)
  end
  local seen = {}
  for i, e in ipairs(list) do
    local f = "instances[" .. i .. "]"
    if type(e) ~= "table" then return bad(f, "a table { service =, addr = }", e) end
    for k in pairs(e) do
      if not PER[k] and not TUNABLES[k] then return nil, "config: unknown field '" .. f .. "." .. tostring(k) .. "'" end
    end
    local inst = { services = {} }
    for k in pairs(TUNABLES) do
      local v = e[k]
      if v == nil then v = base[k] elseif not TUNABLES[k][1](v) then return bad(f .. "." .. k, TUNABLES[k][2], v) end
      inst[k] = v
    end
    inst.ttl = math.tointeger(inst.ttl)
    inst.rise, inst.fall = math.tointeger(inst.rise), math.tointeger(inst.fall)
    local addr = e.addr
    if type(addr) ~= "string" or not addr:match("^tcp[46]?@[^/]+:%d+$") then
      return bad(f .. ".addr", "an address like tcp@127.0.0.1:8972", addr)
    end
    inst.addr = addr
    local svc = e.service
    if type(svc) == "string" then svc = { svc } end
    if type(svc) ~= "table" or #svc == 0 then
      return bad(f .. ".service", "a service name or a non-empty list of names", e.service)
    end
    for j, name in ipairs(svc) do
      if type(name) ~= "string" or not name:match("^[^/%s]+$") then
        return bad(f .. ".service" .. (type(e.service) == "table" and "[" .. j .. "]" or ""),
                   "a service name (no '/' or spaces)", name)
      end
      local key = name .. " " .. addr
      if seen[key] then
        return nil, ("config: field '%s': %s %s is already listed in %s"):format(f, name, addr, seen[key])
      end
      seen[key] = f
      inst.services[j] = name
    end
    if e.meta ~= nil and e.metadata ~= nil then
      return nil, "config: field '" .. f .. "': give meta or metadata, not both"
    end
    local mk = e.meta == nil and e.metadata ~= nil and "metadata" or "meta"
    inst.meta = meta_string(e[mk])
    if not inst.meta then
      return bad(f .. "." .. mk, "a query string like \"weight=10&group=a\" or a table of strings", e[mk])
    end
    out.instances[i] = inst
  end
  return out
end

--- Reads a configuration file: a Lua chunk that returns the table, or a
-- `.json` file with the same shape. Returns the table (unchecked), or nil
-- and a message.
function M.load(path)
  if path:match("%.json$") then
    local f, err = io.open(path, "rb")
    if not f then return nil, err end
    local text = f:read("a")
    f:close()
    local v, code, msg = core.decode(text, "json")
    if v == nil then return nil, path .. ": " .. tostring(msg or code) end
    return v
  end
  local env = setmetatable({}, { __index = _G })
  local chunk, err = loadfile(path, "t", env)
  if not chunk then return nil, err end
  local ok, v = pcall(chunk)
  if not ok then return nil, path .. ": " .. tostring(v) end
  if type(v) ~= "table" then return nil, path .. ": the file must return a table, not " .. show(v) end
  return v
end

-- ---- the registrar -------------------------------------------------------------

local Registrar = {}
Registrar.__index = Registrar
Registrar.__name = "moonrpc.registrar"

local function stderr_log(line)
  io.stderr:write(line, "\n")
  io.stderr:flush()
end

--- Makes a registrar from a configuration table (see the module comment).
-- Raises on a bad configuration (the message names the field); returns
-- nil, err when the registry URL cannot be opened. `opts.log(line)`
-- replaces the default logging to stderr. A registry passed in as an
-- object is left open by stop(); one opened from a URL is closed.
function M.new(cfg, opts)
  local c, msg = M.check(cfg)
  if not c then error(msg, 2) end
  opts = opts or {}
  local reg, owned = c.registry, false
  if type(reg) == "string" then
    local err
    reg, err = registry.open(reg)
    if not reg then return nil, err end
    owned = true
  end
  local self = setmetatable({ reg = reg, owned = owned, log = opts.log or stderr_log,
                              checks = {}, state = "new" }, Registrar)
  for i, inst in ipairs(c.instances) do
    inst.oks, inst.fails, inst.state, inst.registered = 0, 0, "unknown", {}
    self.checks[i] = inst
  end
  return self
end

function Registrar:_say(c, svc, what)
  self.log(("registrar: %s %s %s"):format(svc, c.addr, what))
end

-- One heartbeat: true, or nil and the error.
local function ping(c)
  local f = sched.future()
  local id = sched.expect(function(code, msg) f:set(code, msg) end)
  local ok, code, msg = c.conn:ping(c.timeout, id)
  if not ok then
    sched.forget(id)
    return nil, errors.new(code, msg)
  end
  f:wait()
  code, msg = f:get()
  if code then return nil, errors.new(code, msg) end
  return true
end

-- Errors after which the registry does not keep retrying by itself.
local FINAL = { EINVAL = true, ECLOSED = true, ENOMEM = true, ECANCELED = true }

function Registrar:_up(c)
  c.state = "up"
  for _, svc in ipairs(c.services) do
    if self.state ~= "running" then break end -- stop() came meanwhile
    local ok, err = self.reg:register(svc, c.addr, c.meta, c.ttl)
    if ok then
      c.registered[svc] = true
      self:_say(c, svc, "up, registered")
    elseif FINAL[err.code] then
      self:_say(c, svc, "up, not registered: " .. tostring(err))
    else
      -- The registry keeps the entry and retries it with backoff.
      c.registered[svc] = true
      self:_say(c, svc, "up, registering (registry: " .. tostring(err) .. "; retrying)")
    end
  end
end

function Registrar:_down(c, why)
  local was = c.state
  c.state = "down"
  for _, svc in ipairs(c.services) do
    if c.registered[svc] then
      c.registered[svc] = nil
      local ok, err = self.reg:unregister(svc, c.addr)
      if ok then
        self:_say(c, svc, "down (" .. tostring(why) .. "), unregistered")
      else
        self:_say(c, svc, "down (" .. tostring(why) .. "), unregister failed: " .. tostring(err) ..
                  " (the entry expires within " .. c.ttl .. " s)")
      end
    elseif was == "unknown" then
      self:_say(c, svc, "down (" .. tostring(why) .. "), not registered")
    end
  end
end

-- Sleeps `s` seconds, or until stop() wakes it.
local function nap(c, s)
  local f = sched.future()
  c.nap = f
  c.nap_timer = sched.after(s, function() f:set() end)
  f:wait()
  c.nap, c.nap_timer = nil, nil
end

-- The check loop of one instance, in its own coroutine: one heartbeat per
-- interval, counted against rise and fall.
function Registrar:_run(c)
  while self.state == "running" do
    local t0 = core.now()
    local ok, err = ping(c)
    if self.state ~= "running" then break end
    if ok then
      c.fails, c.oks = 0, c.oks + 1
      if c.state ~= "up" and c.oks >= c.rise then self:_up(c) end
    else
      c.oks, c.fails, c.last_error = 0, c.fails + 1, err
      if c.state ~= "down" and c.fails >= c.fall then self:_down(c, err) end
    end
    local left = c.interval - (core.now() - t0) / 1000
    if self.state == "running" and left > 0 then nap(c, left) end
  end
  c.done:set()
end

--- Starts checking every instance (the first checks go out at once).
-- The checks run in coroutines on the loop: run it (moonrpc.run) or wait.
function Registrar:start()
  if self.state ~= "new" then error("moonrpc: registrar already started", 2) end
  self.state = "running"
  for _, c in ipairs(self.checks) do
    local conn, code, msg = core.client_new(c.addr, sched.id(), { connect_timeout = c.timeout })
    if not conn then error("moonrpc: registrar: " .. tostring(code) .. ": " .. tostring(msg), 2) end
    c.conn, c.done = conn, sched.future()
    sched.spawn(function() self:_run(c) end)
  end
  return self
end

--- Stops the checks, unregisters every entry this registrar registered
-- (gracefully, one attempt each), and closes the registry if the
-- registrar opened it. Waits for all of that (yields in a coroutine, runs
-- the loop elsewhere). A second call waits for the first.
function Registrar:stop()
  if self.stopped then
    self.stopped:wait()
    return
  end
  self.stopped = sched.future()
  local was = self.state
  self.state = "stopping"
  if was == "running" then
    for _, c in ipairs(self.checks) do
      c.conn:close() -- a heartbeat in flight ends now
      if c.nap then
        sched.cancel(c.nap_timer)
        c.nap:set()
      end
    end
    for _, c in ipairs(self.checks) do c.done:wait() end
  end
  -- All at once: with the registry away each one may take its timeout.
  local pending = {}
  for _, c in ipairs(self.checks) do
    for _, svc in ipairs(c.services) do
      if c.registered[svc] then
        c.registered[svc] = nil
        local f = sched.future()
        pending[#pending + 1] = f
        sched.spawn(function()
          local ok, err = self.reg:unregister(svc, c.addr)
          self:_say(c, svc, ok and "unregistered (registrar stopping)"
                            or ("unregister failed: " .. tostring(err) .. " (the entry expires within " ..
                                c.ttl .. " s)"))
          f:set()
        end)
      end
    end
  end
  for _, f in ipairs(pending) do f:wait() end
  if self.owned then self.reg:close() end
  self.state = "stopped"
  self.stopped:set()
end

--- What the registrar knows: a list of { service =, addr =, state =
-- ("unknown", "up" or "down"), registered =, error = (the last failed
-- check's error, if any) }, one per service and instance.
function Registrar:status()
  local out = {}
  for _, c in ipairs(self.checks) do
    for _, svc in ipairs(c.services) do
      out[#out + 1] = { service = svc, addr = c.addr, state = c.state,
                        registered = c.registered[svc] == true, error = c.last_error }
    end
  end
  return out
end

return M
