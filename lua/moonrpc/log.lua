--- moonrpc.log: what a server tells whoever runs it, with levels and a hook.
--
--     moonrpc.log.level = "warn"          -- debug, info (default), warn, error, off
--     moonrpc.log.sink = function(level, msg) ... end   -- nil: stderr
--     moonrpc.log.error("something broke")
--
-- Messages below `level` are dropped, before they are formatted where that
-- costs something (a handler's traceback). The default sink writes one line
-- per message to stderr: local time with milliseconds, the level, the
-- message ("2025-01-02 15:04:05.123 [error] moonrpc: ..."). A sink of your
-- own gets the level name and the message, without the time; a sink that
-- raises has its error and the message written to stderr instead.
--
-- The C core's own messages (a connection closed for a protocol error, one
-- refused past max_conns, a failing oneway call) honour `level` too, and
-- always go to stderr: the core may log from inside a call that Lua made,
-- where no Lua state is free to run a sink.
--
-- The starting level comes from the environment variable MOONRPC_LOG_LEVEL
-- when it names a level.
-- @module moonrpc.log

local core = require "moonrpc.core"

local LEVELS = { debug = 1, info = 2, warn = 3, error = 4, off = 5 }

local state = { level = "info", n = LEVELS.info, sink = nil }

local M = {}

local function check_level(level, what, depth)
  local n = LEVELS[level]
  if not n then
    error(("moonrpc.log: unknown level %s (debug, info, warn, error, off)")
      :format(type(level) == "string" and ("'" .. level .. "'") or tostring(level)), depth)
  end
  if what == "write" and n == LEVELS.off then
    error("moonrpc.log: 'off' is a threshold, not a message level", depth)
  end
  return n
end

--- True when a message of `level` would be written now.
function M.enabled(level)
  return (LEVELS[level] or LEVELS.error) >= state.n
end

--- Writes `msg` at `level` ("debug", "info", "warn", "error") through the
-- sink, unless `level` is below the threshold.
function M.write(level, msg)
  local n = check_level(level, "write", 3)
  if n < state.n then return end
  msg = tostring(msg)
  local sink = state.sink
  if not sink then return core.log_write(n, msg) end
  local ok, err = pcall(sink, level, msg)
  if not ok then
    core.log_write(LEVELS.error, "log sink failed: " .. tostring(err))
    core.log_write(n, msg)
  end
end

for _, name in ipairs { "debug", "info", "warn", "error" } do
  M[name] = function(msg) return M.write(name, msg) end
end

local function set_level(level)
  state.n = check_level(level, "set", 4)
  state.level = level
  core.log_level(state.n)
end

local env = os.getenv("MOONRPC_LOG_LEVEL")
if env and LEVELS[env] then set_level(env) end

-- `level` and `sink` are checked when set, so a misspelled level raises
-- instead of silently logging everything (or nothing).
return setmetatable({}, {
  __index = function(_, k)
    if k == "level" then return state.level end
    if k == "sink" then return state.sink end
    return M[k]
  end,
  __newindex = function(_, k, v)
    if k == "level" then
      set_level(v)
    elseif k == "sink" then
      if v ~= nil and type(v) ~= "function" then
        error("moonrpc.log.sink: function or nil expected, got " .. type(v), 2)
      end
      state.sink = v
    else
      error("moonrpc.log: unknown field '" .. tostring(k) .. "' (level, sink)", 2)
    end
  end,
  __name = "moonrpc.log",
})
