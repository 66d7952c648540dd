--- moonrpc.call: the call object that `xc:go()` returns (rpcx's *Call).
--
-- A call ends exactly once: a reply, a remote error, a timeout, a cancel
-- (discard) or a lost connection. Every request it sent (a retry, a backup
-- request) is tracked so that ending the call stops them all.
-- @module moonrpc.call

local sched = require "moonrpc.sched"
local errors = require "moonrpc.errors"

local M = {}

local Call = {}
Call.__index = Call
Call.__name = "moonrpc.call"

function M.new()
  return setmetatable({ fut = sched.future(), tries = 0, sent = {} }, Call)
end

--- Records a request in flight on `conn` with core seq `seq`.
function Call:track(conn, seq)
  self.sent[#self.sent + 1] = { conn = conn, seq = seq }
end

--- Ends the call with (reply, err, meta) unless it already ended; cancels
-- the requests still in flight (their late replies are ignored).
function Call:finish(value, err, meta)
  if self.fut.done then return false end
  local sent = self.sent
  self.sent = {}
  self.fut:set(value, err, meta)
  for _, s in ipairs(sent) do s.conn:cancel(s.seq) end
  return true
end

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
  return self:finish(nil, errors.new("ECANCELED", "call canceled"))
end

return M
