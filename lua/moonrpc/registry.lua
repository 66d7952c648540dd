--- moonrpc.registry: service registries (the embedded moonrpc:// one, etcd
-- v3, Redis) with rpcx's layout, client discovery from them, and the glue
-- for self-registration.
--
--     local reg = assert(moonrpc.registry("etcd://127.0.0.1:2379/rpcx_test"))
--     local s = moonrpc.server{ registry = reg, ttl = 10 }
--     s:register("Arith", Arith, "weight=10")
--     s:serve("tcp", "127.0.0.1:8972")        -- registered once listening
--
--     local d  = moonrpc.registry_discovery(reg, "rpcx_test", "Arith")
--     local xc = moonrpc.xclient("Arith", moonrpc.Failover, moonrpc.RoundRobin, d)
--
-- Keys are `basePath/Service/tcp@host:port`, values the metadata as a query
-- string, written under a lease the registry keeps alive; Go rpcx servers
-- and moonrpc servers can share one etcd.
-- @module moonrpc.registry

local core = require "moonrpc.core"
local sched = require "moonrpc.sched"
local errors = require "moonrpc.errors"
local discovery = require "moonrpc.discovery"

local M = {}

local Registry = {}
Registry.__index = Registry
Registry.__name = "moonrpc.registry"

--- Opens a registry: "moonrpc://host:port[/basePath]" (the embedded
-- registry, `moonrpc registry`), "etcd://host:port/basePath" or
-- "redis://host:port/basePath"; the base path defaults to "rpcx".
-- Returns the registry or nil, err.
function M.open(url)
  if type(url) ~= "string" then error("bad argument #1 to 'registry' (URL expected)", 2) end
  local r, code, msg = core.registry_open(url)
  if not r then return nil, errors.new(code, msg) end
  return setmetatable({ core = r, url = url }, Registry)
end

function M.is(v)
  return getmetatable(v) == Registry
end

-- Runs one operation and waits for its completion: (true) or (nil, err),
-- or the value it carries.
local function wait(self, what, start)
  if not self.core then error("moonrpc: " .. what .. " on a closed registry", 3) end
  local f = sched.future()
  local id = sched.expect(function(code, msg, value)
    if code then f:set(nil, errors.new(code, msg .. " (" .. self.url .. ")"))
    else f:set(value == nil and true or value) end
  end)
  local ok, code, msg = start(id)
  if not ok then
    sched.forget(id)
    return nil, errors.new(code, msg)
  end
  f:wait()
  return f:get()
end

--- Registers `addr` ("tcp@host:port") for `service` with `metadata`,
-- under a lease of `ttl` seconds (default 10) kept alive until
-- unregister or close. Returns true or nil, err.
function Registry:register(service, addr, metadata, ttl)
  return wait(self, "register", function(id)
    return self.core:register(service, addr, metadata or "", ttl or 10, id)
  end)
end

function Registry:update(service, addr, metadata)
  return wait(self, "update", function(id)
    return self.core:update(service, addr, metadata or "", id)
  end)
end

function Registry:unregister(service, addr)
  return wait(self, "unregister", function(id)
    return self.core:unregister(service, addr, id)
  end)
end

--- The instances of `service`: { { addr =, metadata =, service = }, ... }.
function Registry:list(service)
  return wait(self, "list", function(id) return self.core:list(service, id) end)
end

--- Calls `fn(list)` with the instances of `service` now and after every
-- change; returns a watch with :stop(). While the registry is away `fn` is
-- not called (the last list stands); it is called again once it is back.
function Registry:watch(service, fn)
  if not self.core then error("moonrpc: watch on a closed registry", 2) end
  if type(fn) ~= "function" then error("bad argument #2 to 'watch' (function expected)", 2) end
  local id = sched.listen(fn)
  local w, code, msg = self.core:watch(service, id)
  if not w then
    sched.unlisten(id)
    return nil, errors.new(code, msg)
  end
  return {
    stop = function()
      sched.unlisten(id)
      w:stop()
    end,
  }
end

--- Unregisters what this registry registered, stops its watches, closes.
-- Waits until that is done (the goodbyes take a second at most) wherever
-- it may wait: in a coroutine, or at a script's top level, so that a
-- script that ends right after close() has said its goodbyes. From inside
-- a callback it only starts them.
function Registry:close()
  local c = self.core
  if not c then return end
  self.core = nil
  if core.in_callback() and not sched.in_ours() then
    c:close()
    return
  end
  local f = sched.future()
  local id = sched.expect(function() f:set() end)
  if c:close(id) then f:wait() else sched.forget(id) end
end

Registry.__close = Registry.close

--- A discovery fed by the registry's watch on `service` (rpcx's
-- NewEtcdV3Discovery and friends). `reg` is a registry or its URL. It waits up to `wait` seconds (default
-- 3) for the first list. When the registry goes away the last list is kept.
function M.discovery(reg, base_path, service, wait_s)
  if type(reg) == "string" then
    local r, err = M.open(reg)
    if not r then return nil, err end
    reg = r
  end
  if not M.is(reg) then error("bad argument #1 to 'registry_discovery' (registry or URL expected)", 2) end
  if base_path ~= nil and base_path:gsub("^/+", ""):gsub("/+$", "") ~= reg.core:base() then
    error("bad argument #2 to 'registry_discovery' (the registry was opened with base path '" ..
          reg.core:base() .. "')", 2)
  end
  if type(service) ~= "string" then error("bad argument #3 to 'registry_discovery' (service expected)", 2) end
  local d = discovery.multiple_servers({})
  local first = sched.future()
  local w, err = reg:watch(service, function(list)
    d:update(list)
    first:set()
  end)
  if not w then return nil, err end
  d.watch = w
  first:wait(wait_s or 3)
  return d
end

-- ---- self-registration (used by moonrpc.server) ---------------------------------

--- Resolves a server's `opts.registry` (a registry or a URL).
function M.resolve(r)
  if r == nil or M.is(r) then return r end
  if type(r) == "string" then
    local reg, err = M.open(r)
    if not reg then error("moonrpc: opts.registry: " .. tostring(err), 3) end
    return reg
  end
  error("bad opts.registry (registry or URL expected)", 3)
end

return M
