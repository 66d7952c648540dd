-- moonrpc call: one call from the command line, to an address or to a
-- service found in a registry.

local USAGE = [[
usage: moonrpc call ADDR Service.Method [ARGS | -d DATA] [options]
       moonrpc call --registry URL Service.Method [ARGS | -d DATA] [options]

Calls Service.Method once and prints the reply. ARGS is a Lua table
literal ({A = 7, B = 8}) or JSON ({"A": 7, "B": 8}); none means nil. The
payload is msgpack, as rpcx's Go client sends by default, whatever form
ARGS takes.

options:
  --registry URL   find the service in a registry (moonrpc://, etcd://,
                   redis://) instead of calling ADDR; Failover over its
                   instances
  -d, --data DATA  the arguments, as grpcurl takes them: DATA itself (as
                   ARGS), @FILE to read them from FILE, @- (or @) from stdin
  --json           the output format only: print the reply as JSON instead
                   of a Lua literal (the input may be either form with or
                   without it). Binary strings (not UTF-8) print as base64
                   strings, as Go's encoding/json writes a []byte; without
                   --json they print escaped ("\x89PNG\r\n...")
  --meta k=v       request metadata (repeat for more); the reply's metadata
                   is printed to stderr
  --timeout S      seconds before giving up (default 10)

exit codes: 0 success, 1 remote error (the service answered with an error),
2 usage, 3 transport failure or timeout.

examples:
  moonrpc call tcp@127.0.0.1:8972 Arith.Mul '{A = 7, B = 8}'
  moonrpc call tcp@127.0.0.1:8972 Arith.Mul '{"A": 7, "B": 8}' --json
  moonrpc call tcp@127.0.0.1:8972 Arith.Mul -d @args.json
  echo '{"A": 7, "B": 8}' | moonrpc call tcp@127.0.0.1:8972 Arith.Mul -d @-
  moonrpc call --registry moonrpc://127.0.0.1:9000 Arith.Mul '{A = 7, B = 8}' --meta trace=abc
]]

return function(args, util)
  local opts, pos = util.getopts(args, { registry = "value", timeout = "value", json = "flag",
    meta = "multi", data = "value", help = "flag" }, { d = "data" })
  if opts.help then io.write(USAGE); os.exit(0) end
  local addr
  if not opts.registry then addr = table.remove(pos, 1) end
  local target, argstr = pos[1], pos[2]
  if not target or #pos > 2 or (not opts.registry and not addr) then
    io.stderr:write(USAGE)
    os.exit(2)
  end
  local service, method = target:match("^([^.]+)%.(.+)$")
  if not service then util.die(2, "expected Service.Method, got ", target) end
  local timeout = tonumber(opts.timeout or 10)
  if not timeout or timeout <= 0 then util.die(2, "--timeout wants seconds, got ", opts.timeout) end
  local meta
  for _, kv in ipairs(opts.meta or {}) do
    local k, v = kv:match("^([^=]+)=(.*)$")
    if not k then util.die(2, "--meta wants key=value, got ", kv) end
    meta = meta or {}
    meta[k] = v
  end
  if opts.data then
    if argstr then util.die(2, "give the arguments once: as ARGS or with -d, not both") end
    argstr = util.read_data(opts.data)
  end
  local value = util.parse_args(argstr)

  local moonrpc = require "moonrpc"
  local d, mode
  if opts.registry then
    local err
    d, err = moonrpc.registry_discovery(opts.registry, nil, service)
    if not d then util.die(tostring(err):match("^EADDR") and 2 or 3, tostring(err)) end
    if #d:get() == 0 then util.die(3, "no instance of ", service, " in ", opts.registry) end
    mode = moonrpc.Failover
  else
    d, mode = moonrpc.peer2peer(addr), moonrpc.Failfast
  end
  local xc = moonrpc.xclient(service, mode, moonrpc.RoundRobin, d, { timeout = timeout })
  local reply, err, rmeta = xc:call(method, value, { timeout = timeout, metadata = meta })
  xc:close()
  if d.watch then d.watch.stop() end
  if err then
    io.stderr:write("error ", tostring(err), "\n")
    os.exit(err.code == "EREMOTE" and 1 or 3)
  end
  if opts.meta and rmeta and next(rmeta) then
    io.stderr:write("metadata ", util.render(rmeta), "\n")
  end
  if opts.json then
    local text, e = moonrpc.encode(util.json_safe(reply), "json")
    if not text then util.die(3, "cannot print the reply as JSON: ", tostring(e)) end
    io.write(text, "\n")
  else
    io.write(util.render(reply), "\n")
  end
end
