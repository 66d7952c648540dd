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

--- use_loop(uv): run moonrpc on luv's loop (uv = require "luv"), so that
-- luv's handles and moonrpc's calls interleave in one uv.run(). Call it
-- before moonrpc creates anything (a server, a client, a timer, run()).
-- Also takes a light userdata, the uv_loop_t * of another libuv host.
-- The loop stays the host's: moonrpc never closes it. Inside uv.run(),
-- moonrpc's callbacks run from luv's run, as luv's own do; waiting there
-- must yield, so waits belong in moonrpc.spawn coroutines and handlers.
function M.use_loop(uv)
  local ptr, err = uv, nil
  if type(uv) == "table" then
    if type(uv.run) ~= "function" or type(uv.new_timer) ~= "function" then
      error("moonrpc.use_loop: expects the luv module (require \"luv\") or a uv_loop_t * light userdata", 2)
    end
    ptr, err = core.luv_loop(uv)
    if not ptr then error("moonrpc.use_loop: " .. err, 2) end
  elseif type(uv) ~= "userdata" then
    error("moonrpc.use_loop: expects the luv module (require \"luv\") or a uv_loop_t * light userdata", 2)
  end
  local ok, e = pcall(core.use_loop, ptr)
  if not ok then error(e, 2) end
  if type(uv) == "table" and type(uv.loop_mode) == "function" then
    sched.host_running = function() return uv.loop_mode() ~= nil end
  end
end

for k in pairs(xclient.fail_modes) do M[k] = k end
for k in pairs(xclient.selectors) do M[k] = k end

return M
