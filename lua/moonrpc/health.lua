--- moonrpc.health: what an xclient knows of each server's health: the
-- circuit breaker and the reconnect backoff.
--
-- Breaker (`opts.breaker = { failures = N, window = seconds }`): after N
-- consecutive failures a server is skipped until `window` passes; then one
-- trial call is let through, and its outcome closes the breaker or opens it
-- for another window. Backoff: a server that could not be reached is
-- skipped while others are available, for 0.1 s doubling up to 5 s, and
-- tried again after that, so a dead server never stalls calls to the
-- others.
--
-- Failures are those of the connection or of time (refused, lost,
-- timed out); an error the service itself returned is an answer, and
-- counts as a success here.
-- @module moonrpc.health

local core = require "moonrpc.core"

local M = {}

local Health = {}
Health.__index = Health

local BACKOFF_MIN, BACKOFF_MAX = 100, 5000 -- ms

--- `breaker` is nil (no breaker) or { failures = N, window = seconds }.
function M.new(breaker)
  if breaker ~= nil then
    if type(breaker) ~= "table" or math.type(breaker.failures) ~= "integer" or breaker.failures < 1
       or type(breaker.window) ~= "number" or breaker.window <= 0 then
      error("bad opts.breaker (expected { failures = N >= 1, window = seconds > 0 })", 3)
    end
  end
  return setmetatable({ breaker = breaker, servers = {} }, Health)
end

local function state(self, addr)
  local s = self.servers[addr]
  if not s then
    s = { fails = 0 } -- open_until, trial (when it began), down_until, backoff
    self.servers[addr] = s
  end
  return s
end

--- How `addr` stands now: "ok"; "down" (backing off after it could not
-- be reached: use it only when nothing else is ok); or "open" (its breaker
-- is open: never use it). A half-open breaker answers "ok" to one caller at
-- a time, which takes the trial call; pass `take` = false to look without
-- taking it.
function Health:status(addr, now, take)
  local s = self.servers[addr]
  if not s then return "ok" end
  if s.open_until then
    -- A trial that never reported (its call was discarded, or ended with
    -- an encoding error) frees the slot after another window.
    local busy = s.trial and now < s.trial + self.breaker.window * 1000
    if now < s.open_until or busy then return "open" end
    if take ~= false then s.trial = now end -- half-open: this call decides
  end
  if s.down_until and now < s.down_until then return "down" end
  return "ok"
end

--- True when the breaker of `addr` is open (for ENOSERVER messages).
function Health:is_open(addr)
  local s = self.servers[addr]
  return s ~= nil and s.open_until ~= nil
end

function Health:success(addr)
  local s = self.servers[addr]
  if not s then return end
  s.fails, s.open_until, s.trial, s.down_until, s.backoff = 0, nil, nil, nil, nil
end

--- Records a failure; `unreachable` (refused, no route) also starts or
-- doubles the reconnect backoff.
function Health:failure(addr, unreachable)
  local s = state(self, addr)
  local now = core.now()
  s.fails = s.fails + 1
  local b = self.breaker
  if b and (s.trial or s.fails >= b.failures) then
    s.open_until = now + b.window * 1000
  end
  s.trial = nil
  if unreachable then
    s.backoff = s.backoff and math.min(s.backoff * 2, BACKOFF_MAX) or BACKOFF_MIN
    s.down_until = now + s.backoff
  end
end

--- Forgets servers no longer listed.
function Health:retain(list)
  local keep = {}
  for _, s in ipairs(list) do keep[s.addr] = true end
  for addr in pairs(self.servers) do
    if not keep[addr] then self.servers[addr] = nil end
  end
end

return M
