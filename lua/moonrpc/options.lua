--- moonrpc.options: the option names that moonrpc.server{}, s:add_registry,
-- xclient and its calls accept, and the check that a table names only those.
--
-- A misspelled option used to be ignored without a word (`timeoutt = 1`
-- left calls without a timeout): a key no code reads is misuse, so it
-- raises "unknown option 'timeoutt' in xclient options (did you mean
-- 'timeout'?)". When code starts reading a new option, its name goes here.
-- @module moonrpc.options

local core = require "moonrpc.core"

local M = {}

local function set(list, extra)
  local s = {}
  for _, k in ipairs(list) do s[k] = true end
  for k in pairs(extra or {}) do s[k] = true end
  return s
end

-- The named limits (lua/src/lbase.c, lmrpc_read_limits): every key of
-- moonrpc.limits, so a new limit is known everywhere at once.
local limits = core.limits

--- moonrpc.server(opts): the limits, reuseport (lserver.c), idle_timeout,
-- and self-registration's registry, ttl, advertise (server.lua).
M.server = set({ "reuseport", "idle_timeout", "registry", "ttl", "advertise" }, limits)

--- s:add_registry(opts).
M.registry = set { "max_entries", "max_watches", "max_ttl" }

--- Per-call options: xc:call, go, oneshot, broadcast, fork, inform.
M.call = set { "timeout", "metadata", "serialize", "compress", "retries", "backup_latency" }

--- moonrpc.xclient(..., opts): the call defaults above (but metadata), the
-- xclient's own, and what the connections read (lclient.c: the limits,
-- connect_timeout, heartbeat, heartbeat_timeout).
M.xclient = set({
  "timeout", "serialize", "compress", "retries", "backup_latency",
  "auth", "group", "breaker", "pool", "latitude", "longitude", "ping_interval",
  "select", "on_push", "connect_timeout", "heartbeat", "heartbeat_timeout",
}, limits)

-- Levenshtein distance, for the "did you mean" hint (names are short).
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

local function nearest(name, known)
  local best, best_d
  for k in pairs(known) do
    local d = distance(name, k)
    if d <= 2 and (not best_d or d < best_d or (d == best_d and k < best)) then
      best, best_d = k, d
    end
  end
  return best
end

--- Raises (at `level`, as error() counts) when `opts` has a key that is not
-- in `known`. `what` names the table in the message ("xclient options").
function M.check(opts, known, what, level)
  for k in pairs(opts) do
    if not known[k] then
      local hint = type(k) == "string" and nearest(k, known)
      error(("unknown option '%s' in %s%s"):format(tostring(k), what,
        hint and (" (did you mean '" .. hint .. "'?)") or ""), level + 1)
    end
  end
end

return M
