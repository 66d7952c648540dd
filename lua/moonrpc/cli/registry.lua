-- moonrpc registry: runs the embedded registry, a moonrpc service that
-- servers register with and clients watch (URL moonrpc://host:port).

local USAGE = [[
usage: moonrpc registry [--listen ADDR] [--max-entries N] [--max-watches N]
                        [--ready-file PATH]

Runs the embedded service registry on ADDR (default tcp@127.0.0.1:9000).
Servers register with it and clients discover through it with the URL
moonrpc://HOST:PORT[/basePath]. Instances hold TTL leases that they keep
alive; an instance not heard from within its TTL is dropped; watchers are
told of every change by server push. State is in memory: after a restart
the instances register again on their own within a second.
SIGINT or SIGTERM stops it. --ready-file PATH: the address is written to
PATH once it listens (removed at start and on stop; moonrpc wait PATH).

examples:
  moonrpc registry --listen tcp@127.0.0.1:9000 &
  moonrpc serve examples/lua/arith_service.lua --listen tcp@127.0.0.1:8972 \
      --registry moonrpc://127.0.0.1:9000
  moonrpc call --registry moonrpc://127.0.0.1:9000 Arith.Mul '{A = 7, B = 8}'
]]

return function(args, util)
  local opts = util.getopts(args, { listen = "value", ["max-entries"] = "value",
    ["max-watches"] = "value", help = "flag", ["ready-file"] = "value" })
  if opts.help then io.write(USAGE); os.exit(0) end
  local ready_file = opts["ready-file"]
  util.ready_start(ready_file)
  local moonrpc = require "moonrpc"
  local s = moonrpc.server()
  local ok, err = s:add_registry{ max_entries = tonumber(opts["max-entries"]),
    max_watches = tonumber(opts["max-watches"]) }
  if not ok then util.die(3, tostring(err)) end
  local addr, e = s:serve(opts.listen or "tcp@127.0.0.1:9000")
  if not addr then util.die(3, tostring(e)) end
  io.write("listening on ", addr, " (registry moonrpc://", (addr:gsub("^%w+@", "")), ")\n")
  io.stdout:flush()
  util.ready(ready_file, addr)
  local function stop() util.ready_end(ready_file); s:shutdown(2) end
  moonrpc.signal("SIGINT", stop)
  moonrpc.signal("SIGTERM", stop)
  moonrpc.run()
end
