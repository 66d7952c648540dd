--- moonrpc.server: services written as Lua tables of functions.
--
--     local s = moonrpc.server()
--     s:register("Arith", {
--       Mul = function(ctx, args) return { C = args.A * args.B } end,
--     }, "weight=10")
--     s:serve("tcp", "127.0.0.1:8972")
--
-- A handler is `function(ctx, args) return reply end`. Raising, or
-- returning `nil, err`, sends an error reply whose __rpcx_error__ is the
-- message; returning `reply, err` sends the error with `reply` as payload,
-- as rpcx does. Each request runs in a pooled coroutine, so a handler may
-- call other services or sleep without holding up other requests.
-- @module moonrpc.server

local core = require "moonrpc.core"
local sched = require "moonrpc.sched"
local errors = require "moonrpc.errors"
local registry = require "moonrpc.registry"
local options = require "moonrpc.options"
local log = require "moonrpc.log"

local M = {}

local SERIALIZE_NAMES = { [0] = "raw", [1] = "json", [3] = "msgpack" }

-- ---- the request context ----------------------------------------------------

local Ctx = {}

local function load_info(ctx)
  local req = rawget(ctx, "_req")
  if rawget(ctx, "_done") then
    error("moonrpc: request context used after its reply was sent", 3)
  end
  local service, method, timeout, deadline, ser, oneway = core.req_info(req)
  rawset(ctx, "service", service)
  rawset(ctx, "method", method)
  rawset(ctx, "timeout", timeout > 0 and timeout / 1000 or nil)
  rawset(ctx, "deadline", deadline > 0 and deadline or nil)
  rawset(ctx, "serialize", SERIALIZE_NAMES[ser] or ser)
  rawset(ctx, "oneway", oneway)
  rawset(ctx, "_info", true)
end

local fields = {
  service = true, method = true, timeout = true,
  deadline = true, serialize = true, oneway = true,
}

-- Fields that cost a call into C each, loaded on first use.
local lazy = { meta = core.req_meta, remote = core.req_remote }

Ctx.__index = function(ctx, k)
  local m = Ctx[k]
  if m then return m end
  local load = lazy[k]
  if load then
    if rawget(ctx, "_done") then error("moonrpc: request context used after its reply was sent", 2) end
    local v = load(rawget(ctx, "_req"))
    rawset(ctx, k, v)
    return v
  end
  if fields[k] and not rawget(ctx, "_info") then
    load_info(ctx)
    return rawget(ctx, k)
  end
  return nil
end

--- Sets a metadata pair on the reply.
function Ctx:set_meta(k, v)
  if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number") then
    error("bad argument to 'set_meta' (string key and string value expected)", 2)
  end
  local m = rawget(self, "_rmeta")
  if not m then m = {}; rawset(self, "_rmeta", m) end
  m[k] = tostring(v)
end

--- Seconds left before the caller's deadline (__ServerTimeout), or nil.
function Ctx:remaining()
  local d = self.deadline
  if not d then return nil end
  return math.max(0, (d - core.now()) / 1000)
end

local function new_ctx(req)
  return setmetatable({ _req = req }, Ctx)
end

-- A handler that raises is logged at "error" with its traceback; the
-- message handler runs where the error was raised, so the traceback shows
-- the handler's own file:line. It keeps the traceback in `raised` for
-- run_request to read right after xpcall returns (nothing else runs in
-- between), and builds it only when the error level is logged.
local raised

local function trap(e)
  if log.enabled("error") then
    local msg = type(e) == "string" and e or errors.handler_message(e)
    local tb = debug.traceback(msg, 2)
    -- Below the handler: xpcall, this module and the scheduler.
    raised = tb:gsub("\n\t%[C%]: in function 'xpcall'.*$", "")
  end
  return e
end

-- One line for the log: which method failed, for whom, and where.
local function log_raise(req, tb)
  local service, method = core.req_info(req)
  local peer = core.req_remote(req) or "?"
  log.write("error", ("handler %s.%s failed (peer %s): %s"):format(service, method, peer, tb))
end

-- Runs one request in its coroutine and answers it exactly once.
local function run_request(handler, req, args)
  local ctx = new_ctx(req)
  local ok, res, err = xpcall(handler, trap, ctx, args)
  local rmeta = rawget(ctx, "_rmeta")
  if not ok and raised then
    local tb = raised
    raised = nil
    log_raise(req, tb) -- before the reply: req is valid until answered
  end
  ctx._done = true
  if not ok then
    core.reply_error(req, errors.handler_message(res), nil, rmeta)
  elseif err ~= nil then
    core.reply_error(req, errors.handler_message(err), res, rmeta)
  else
    core.reply(req, res, rmeta)
  end
end

sched.request_handler = run_request

-- ---- the server ------------------------------------------------------------------

local Server = {}
Server.__index = Server
Server.__name = "moonrpc.server"

--- Creates a server. `opts`: the named limits (max_frame, max_meta_pairs,
-- max_meta_bytes, max_decompressed, max_depth, max_conns, max_write_queue),
-- `idle_timeout` (seconds; off by default, as in rpcx: a connection that
-- sends nothing, heartbeats included, for that long and has no call in
-- flight is closed),
-- and for self-registration `registry` (a moonrpc.registry or its URL),
-- `ttl` (seconds, default 10) and `advertise` (the address to register,
-- default the address served).
function M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #1 to 'server' (table expected)", 2)
  end
  if opts then options.check(opts, options.server, "moonrpc.server options", 2) end
  local s = setmetatable({ services = {}, opts = opts or {}, registered = {} }, Server)
  s.registry = registry.resolve(s.opts.registry)
  s.core = core.server_new(opts)
  return s
end

-- Registers `name` at every address served (self-registration). Returns
-- true, or nil and the first error (serving goes on: the registry retries).
function Server:_announce(name)
  if not self.registry then return true end
  local svc, first_err = self.services[name], nil
  for _, addr in ipairs(self.announced or {}) do
    local ok, err = self.registry:register(name, addr, svc.metadata, self.opts.ttl or 10)
    if ok then self.registered[#self.registered + 1] = { name, addr }
    else first_err = first_err or err end
  end
  if first_err then return nil, first_err end
  return true
end

-- Removes every registration (before a shutdown drains).
function Server:_withdraw()
  if not self.registry then return end
  for _, r in ipairs(self.registered) do self.registry:unregister(r[1], r[2]) end
  self.registered = {}
end

--- Registers `handlers` (a table of functions) as service `name`, with
-- rpcx metadata such as "weight=10&group=a". Only function fields become
-- methods.
function Server:register(name, handlers, metadata)
  if type(name) ~= "string" or name == "" then
    error("bad argument #1 to 'register' (service name expected)", 2)
  end
  if type(handlers) ~= "table" then
    error("bad argument #2 to 'register' (table of functions expected)", 2)
  end
  if metadata ~= nil and type(metadata) ~= "string" then
    error("bad argument #3 to 'register' (metadata string expected)", 2)
  end
  local methods = {}
  for k, v in pairs(handlers) do
    if type(k) == "string" and type(v) == "function" then
      self.core:add(name, k, v)
      methods[#methods + 1] = k
    end
  end
  if #methods == 0 then error("register: '" .. name .. "' has no functions", 2) end
  table.sort(methods)
  self.core:set_metadata(name, metadata or "")
  self.services[name] = { methods = methods, metadata = metadata or "" }
  if self.announced then self:_announce(name) end -- already serving
  return self
end

--- Removes a service.
function Server:unregister(name)
  self.services[name] = nil
  return self.core:remove(name)
end

--- Listens: `serve("tcp", "127.0.0.1:8972")`, `serve("unix", path)`, or
-- one rpcx address `serve("tcp@127.0.0.1:0")`. Returns the bound address
-- ("tcp@127.0.0.1:40001"), or nil, err. With `opts.registry`, every
-- service is registered as soon as the listener is ready, and serve returns
-- once that is done (a registry error is the third value; the registry
-- keeps retrying).
function Server:serve(network, address)
  if address == nil and type(network) == "string" then
    network, address = network:match("^(%w+)@(.+)$")
    if not network then error("bad argument #1 to 'serve' (network@address expected)", 2) end
  end
  if type(network) ~= "string" or type(address) ~= "string" then
    error("bad argument to 'serve' (network and address strings expected)", 2)
  end
  local addr, code, msg = self.core:listen(network, address)
  if not addr then return nil, errors.new(code, msg .. ": " .. network .. "@" .. address) end
  if self.registry then
    self.announced = self.announced or {}
    self.announced[#self.announced + 1] = self.opts.advertise or addr
    local names, reg_err = {}, nil
    for name in pairs(self.services) do names[#names + 1] = name end
    table.sort(names)
    local saved = self.announced
    self.announced = { saved[#saved] } -- register only the new address
    for _, name in ipairs(names) do
      local ok, err = self:_announce(name)
      if not ok then reg_err = reg_err or err end
    end
    self.announced = saved
    return addr, nil, reg_err
  end
  return addr
end

--- The addresses being served.
function Server:addresses()
  return self.core:addresses()
end

--- Installs an auth hook: `fn(ctx, token)` returns true to accept, or
-- false/nil and a message to refuse (the connection is then closed).
function Server:auth(fn)
  if type(fn) ~= "function" then error("bad argument #1 to 'auth' (function expected)", 2) end
  self.core:set_auth(function(req, token)
    local ctx = new_ctx(req)
    local ok, res, msg = pcall(fn, ctx, token)
    ctx._done = true
    if not ok then return false, errors.handler_message(res) end
    return res, msg
  end)
end

--- Serves the embedded registry on this server: the "Registry" service
-- that `moonrpc://host:port` URLs talk to (TTL leases kept alive by the
-- instances, watch by server push). `opts`: max_entries (default 100000),
-- max_watches (10000), max_ttl (seconds, 86400).
--
--     local s = moonrpc.server()
--     s:add_registry()
--     s:serve("tcp@127.0.0.1:9000")  -- moonrpc://127.0.0.1:9000
function Server:add_registry(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #1 to 'add_registry' (table expected)", 2)
  end
  opts = opts or {}
  options.check(opts, options.registry, "add_registry options", 2)
  local ok, code, msg = self.core:add_registry(opts.max_entries, opts.max_watches, opts.max_ttl)
  if not ok then return nil, errors.new(code, msg) end
  return self
end

--- Connections open and requests running; with a registry served, also
-- its instances and watches.
function Server:stats()
  local conns, inflight = self.core:stats()
  local instances, watches = self.core:registry_stats()
  return { conns = conns, inflight = inflight, registry_instances = instances,
           registry_watches = watches }
end

--- Graceful shutdown: stops listening, waits (up to `timeout` seconds,
-- default 10) for calls in flight to be answered, then closes. Yields in a
-- coroutine; runs the loop at top level.
function Server:shutdown(timeout)
  timeout = timeout or 10
  self:_withdraw() -- clients stop choosing us before we stop answering
  local f = sched.future()
  local id = sched.expect(function() f:set() end)
  local ok, code, msg = self.core:shutdown(timeout * 1000, id)
  if not ok then
    sched.forget(id)
    return nil, errors.new(code, msg)
  end
  f:wait()
  self.core:close()
  return true
end

--- Closes at once: listeners, connections; calls in flight are dropped.
function Server:close()
  self.core:close()
end

Server.__close = Server.close

return M
