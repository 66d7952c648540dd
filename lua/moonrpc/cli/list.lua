-- moonrpc list: what a server serves (through its reflection service), or
-- what a registry knows (services, instances and their metadata).

local USAGE = [[
usage: moonrpc list ADDR
       moonrpc list --registry URL [SERVICE...]

With ADDR: the services of that server, their methods and metadata, from
the Reflection.Services call every moonrpc server answers (a Go rpcx
server has none: the command says so and exits 3).
With --registry: the instances of each SERVICE, or of every service under
the registry's base path when none is named, with their metadata.

options:
  --timeout S   seconds before giving up (default 5)

examples:
  moonrpc list tcp@127.0.0.1:8972
  moonrpc list --registry moonrpc://127.0.0.1:9000
  moonrpc list --registry etcd://127.0.0.1:2379/rpcx_test Arith Echo
]]

local function call(moonrpc, addr, service, method, args, timeout)
  local xc = moonrpc.xclient(service, moonrpc.Failfast, moonrpc.RandomSelect,
                             moonrpc.peer2peer(addr), { timeout = timeout })
  local reply, err = xc:call(method, args, { timeout = timeout })
  xc:close()
  return reply, err
end

local function print_instances(by_service)
  local names = {}
  for name in pairs(by_service) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    io.write(name, "\n")
    local list = by_service[name]
    table.sort(list, function(a, b) return a.addr < b.addr end)
    if #list == 0 then io.write("  (no instance)\n") end
    for _, e in ipairs(list) do
      io.write("  ", e.addr, e.meta ~= "" and ("  " .. e.meta) or "", "\n")
    end
  end
end

return function(args, util)
  local opts, pos = util.getopts(args, { registry = "value", timeout = "value", help = "flag" })
  if opts.help then io.write(USAGE); os.exit(0) end
  local timeout = tonumber(opts.timeout or 5)
  local moonrpc = require "moonrpc"

  if not opts.registry then
    if #pos ~= 1 then io.stderr:write(USAGE); os.exit(2) end
    local reply, err = call(moonrpc, pos[1], "Reflection", "Services", nil, timeout)
    if err then
      if err.code == "EREMOTE" and err.message:match("can't find service") then
        util.die(3, pos[1], " has no reflection service (a Go rpcx server?); ",
                 "list it through a registry: moonrpc list --registry URL SERVICE")
      end
      util.die(err.code == "EREMOTE" and 1 or 3, tostring(err))
    end
    for _, s in ipairs(reply.services or {}) do
      io.write(s.name, (s.metadata or "") ~= "" and ("  " .. s.metadata) or "", "\n")
      for _, m in ipairs(s.methods or {}) do io.write("  ", s.name, ".", m, "\n") end
    end
    return
  end

  local reg, err = moonrpc.registry(opts.registry)
  if not reg then util.die(2, tostring(err)) end
  local by_service = {}
  if #pos == 0 then
    local list, e = reg:list("") -- every service under the base path
    if not list then util.die(3, tostring(e)) end
    for _, inst in ipairs(list) do
      by_service[inst.service] = by_service[inst.service] or {}
      table.insert(by_service[inst.service], { addr = inst.addr, meta = inst.metadata or "" })
    end
  else
    for _, service in ipairs(pos) do
      local list, e = reg:list(service)
      if not list then util.die(3, tostring(e)) end
      by_service[service] = {}
      for _, inst in ipairs(list) do
        table.insert(by_service[service], { addr = inst.addr, meta = inst.metadata or "" })
      end
    end
  end
  reg:close()
  print_instances(by_service)
end
