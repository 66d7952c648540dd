--- moonrpc.errors: the error values that runtime failures return.
--
-- A runtime failure returns `nil, err`; `err` is a table with a stable
-- `code` ("EREMOTE" for an error the service returned, "ETIMEDOUT",
-- "ECONNLOST", "ECONNREFUSED", "EENCODE", ...) and a `message`. It prints
-- as "CODE: message". Misuse (wrong argument types) raises instead.
-- @module moonrpc.errors

local M = {}

local Error = {}
Error.__index = Error
Error.__name = "moonrpc.error"
Error.__tostring = function(e) return e.code .. ": " .. e.message end

--- Makes an error value. `extra` fields (address, payload) are copied in.
function M.new(code, message, extra)
  local e = setmetatable({ code = code, message = message or code }, Error)
  if extra then for k, v in pairs(extra) do e[k] = v end end
  return e
end

--- True for values made by `new`.
function M.is(v)
  return getmetatable(v) == Error
end

-- Failures of the connection or the attempt (not of the service itself):
-- the fail modes may retry these on the same or another server.
local transport = {
  ESHUTDOWN = true,
  ECONNLOST = true, ECONNREFUSED = true, ECONNRESET = true, ECONNABORTED = true,
  EHEARTBEAT = true, ENETUNREACH = true, EHOSTUNREACH = true, EPIPE = true,
  ENOSERVER = true, ECLOSED = false, EADDRNOTAVAIL = true, EAI_NONAME = true,
}

--- The error text with which a moonrpc server in a graceful shutdown
-- refuses a request, before any handler sees it (core/src/server/
-- dispatch.c). The xclient turns such a reply into ESHUTDOWN, which the
-- fail modes may retry elsewhere: the method has not run.
M.SHUTTING_DOWN = "server is shutting down"

function M.retryable(code)
  return transport[code] == true
end

--- The message of a handler's error, as sent in __rpcx_error__: a string
-- loses Lua's "chunk:line: " position prefix; a table gives its `message`.
function M.handler_message(e)
  if type(e) == "string" then
    return (e:gsub("^[^\n]-:%d+: ", "", 1))
  end
  -- An error object's own __tostring (or __index) may raise: never let that
  -- keep the request from being answered.
  local ok, msg = pcall(function()
    if type(e) == "table" and e.message ~= nil then return tostring(e.message) end
    return tostring(e)
  end)
  if ok and type(msg) == "string" then return msg end
  return "handler failed with an error value that cannot be printed (" .. type(e) .. ")"
end

return M
