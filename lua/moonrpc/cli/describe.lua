-- moonrpc describe: one service of a server (its methods and rpcx
-- metadata) or one method, from the Reflection.Services call every moonrpc
-- server answers, as `grpcurl describe` shows one service.

local USAGE = [[
usage: moonrpc describe ADDR Service[.Method] [--timeout S]

Shows what the server at ADDR says of Service (its rpcx metadata and its
methods) or of Service.Method, from its Reflection.Services answer. rpcx
has no schemas, so a method is known by its name only: the arguments and
the reply are whatever its handler takes and returns.

options:
  --timeout S   seconds before giving up (default 5)

exit codes (those of `moonrpc call`): 0 found, 1 the server answered but
has no such service or method, 2 usage, 3 transport failure or timeout,
or no reflection service (a Go rpcx server: describe it from its source,
or list its registry entries with moonrpc list --registry URL SERVICE).

examples:
  moonrpc describe tcp@127.0.0.1:8972 Arith
  moonrpc describe tcp@127.0.0.1:8972 Arith.Mul
]]

-- "a=1&b=2" as "a=1, b=2" (the rpcx metadata is a URL query string).
local function metadata_text(meta)
  if meta == nil or meta == "" then return "(none)" end
  return (meta:gsub("&", ", "))
end

return function(args, util)
  local opts, pos = util.getopts(args, { timeout = "value", help = "flag" })
  if opts.help then io.write(USAGE); os.exit(0) end
  if #pos ~= 2 then io.stderr:write(USAGE); os.exit(2) end
  local addr, target = pos[1], pos[2]
  local service, method = target:match("^([%w_]+)%.([%w_]+)$")
  if not service then
    service = target:match("^[%w_]+$")
    if not service then util.die(2, "expected Service or Service.Method, got ", target) end
  end
  local timeout = tonumber(opts.timeout or 5)
  if not timeout or timeout <= 0 then util.die(2, "--timeout wants seconds, got ", opts.timeout) end

  local moonrpc = require "moonrpc"
  local xc = moonrpc.xclient("Reflection", moonrpc.Failfast, moonrpc.RandomSelect,
                             moonrpc.peer2peer(addr), { timeout = timeout })
  local reply, err = xc:call("Services", nil, { timeout = timeout })
  xc:close()
  if err then
    if err.code == "EREMOTE" and err.message:match("can't find service") then
      util.die(3, addr, " has no reflection service (a Go rpcx server?); ",
               "list it through a registry: moonrpc list --registry URL ", service)
    end
    util.die(err.code == "EREMOTE" and 1 or 3, tostring(err))
  end
  local found, names = nil, {}
  for _, s in ipairs(type(reply) == "table" and reply.services or {}) do
    names[#names + 1] = s.name
    if s.name == service then found = s end
  end
  if not found then
    util.die(1, addr, " has no service ", service, " (it serves: ",
             #names > 0 and table.concat(names, ", ") or "none", ")")
  end
  local methods = found.methods or {}
  if method then
    local has = false
    for _, m in ipairs(methods) do has = has or m == method end
    if not has then
      util.die(1, service, " has no method ", method, " (its methods: ",
               #methods > 0 and table.concat(methods, ", ") or "none", ")")
    end
    io.write(service, ".", method, "\n",
             "  a method of ", service, " (metadata: ", metadata_text(found.metadata), ")\n",
             "  call it: moonrpc call ", addr, " ", service, ".", method, " '{...}'\n")
    return
  end
  io.write(service, "\n", "  metadata: ", metadata_text(found.metadata), "\n",
           "  methods (", #methods, "):\n")
  for _, m in ipairs(methods) do io.write("    ", service, ".", m, "\n") end
end
