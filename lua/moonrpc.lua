--- moonrpc: rpcx-compatible RPC for Lua 5.4.
--
-- Services are Lua tables of functions; calls yield inside coroutines and
-- run the loop at a script's top level. The names follow rpcx's Go API:
-- server / register / serve, peer2peer / multiple_servers, xclient with
-- call / go / oneshot, the fail modes and the selectors.
-- @module moonrpc

local core = require "moonrpc.core"
local sched = require "moonrpc.sched"
local errors = require "moonrpc.errors"
local server = require "moonrpc.server"
local xclient = require "moonrpc.xclient"
local discovery = require "moonrpc.discovery"
local registry = require "moonrpc.registry"
local log = require "moonrpc.log"

-- encode and decode fail as calls do: nil and an error value (err.code,
-- err.message), not core's bare nil, code, message.
local function as_call(fn)
  return function(...)
    local v, code, msg = fn(...)
    if code ~= nil then return nil, errors.new(code, msg) end
    return v
  end
end

local M = {
  _VERSION = core.version,
  null = core.null,     -- stands for nil inside tables
  bin = core.bin,       -- bin(s): send s as msgpack bin (Go []byte)
  encode = as_call(core.encode), -- encode(v [, serialize]) -> bytes | nil, err
  decode = as_call(core.decode), -- decode(bytes [, serialize]) -> v | nil, err
  limits = core.limits, -- the named limits and their defaults
  server = server.new,
  peer2peer = discovery.peer2peer,
  multiple_servers = discovery.multiple_servers,
  xclient = xclient.new,
  parse_meta = discovery.parse_meta,
  registry = registry.open,
  registry_discovery = registry.discovery,
  run = sched.run,
  stop = sched.stop,
  spawn = sched.spawn,
  sleep = sched.sleep,
  signal = sched.signal, -- signal("SIGTERM", fn): fn(name) runs in a coroutine
  future = sched.future,
  error = errors.new,
  is_error = errors.is,
  now = core.now,
  loop_pointer = core.loop_pointer,
  log = log,            -- log.level = "warn", log.sink = function(level, msg) end
}

for k in pairs(xclient.fail_modes) do M[k] = k end
for k in pairs(xclient.selectors) do M[k] = k end

return M
