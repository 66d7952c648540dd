-- moonrpc serve: runs a service script.

local USAGE = [[
usage: moonrpc serve FILE.lua [SCRIPT ARGS...] [--listen ADDR] [--registry URL]
                     [--ttl S] [--shutdown-timeout S] [--workers N|auto]
                     [--ready-file PATH]

Runs a service script. The script gets the server as its first argument
(then SCRIPT ARGS) and either returns a table of services,
{ Arith = { Mul = function(ctx, args) ... end } } (a `__metadata` string
field becomes the service's rpcx metadata), or registers them itself with
s:register(...). The server listens on ADDR (default tcp@127.0.0.1:8972) and
prints "listening on ADDR". With --registry it registers every service
there under a lease of --ttl seconds (default 10). Nothing is restarted on
its own: a handler's error is that call's error reply. SIGINT or SIGTERM
stops it gracefully: it unregisters, lets calls in flight finish (at most
--shutdown-timeout seconds, default 10), and exits 0. --ready-file PATH:
the address is written to PATH once the server listens and has registered
(PATH is removed at start and on a graceful stop), so a script can wait for
it: `moonrpc wait PATH`.

--workers N runs N worker processes (auto: one per CPU) on the one address,
with SO_REUSEPORT: the kernel spreads connections over them. FILE runs once
in each worker, so Lua state is per worker (MOONRPC_WORKER and
MOONRPC_WORKERS say which one a script runs in). This process supervises
them: it registers each service once for the address, restarts a worker
that dies, and on SIGINT/SIGTERM unregisters, stops every worker
gracefully and exits 0.

examples:
  moonrpc serve examples/lua/arith_service.lua --listen tcp@127.0.0.1:8972
  moonrpc serve examples/lua/arith_service.lua --listen tcp@127.0.0.1:0 \
      --registry moonrpc://127.0.0.1:9000 --ttl 5
  moonrpc serve examples/lua/arith_service.lua --workers auto
]]

return function(args, util)
  local die, getopts = util.die, util.getopts
  local opts, pos = getopts(args, { listen = "value", registry = "value", ttl = "value",
    ["shutdown-timeout"] = "value", workers = "value", reuseport = "flag", help = "flag",
    ["ready-file"] = "value" })
  if opts.help then io.write(USAGE); os.exit(0) end
  if not pos[1] then io.stderr:write(USAGE); os.exit(2) end
  local ready_file = opts["ready-file"]
  util.ready_start(ready_file)
  local workers = require "moonrpc.workers"
  local n = workers.count(opts.workers)
  if not n then die(2, "--workers takes a count or 'auto', not '", opts.workers, "'") end
  if n > 1 then
    local rest = { "serve" }
    for _, a in ipairs(pos) do rest[#rest + 1] = a end
    local timeout = tonumber(opts["shutdown-timeout"] or 10)
    return workers.supervise{ n = n, listen = opts.listen, registry = opts.registry,
      ttl = tonumber(opts.ttl or 10), timeout = timeout, ready_file = ready_file,
      argv = function(listen)
        return workers.self_argv(rest, { "--listen", listen, "--reuseport",
                                         "--shutdown-timeout", tostring(timeout) })
      end }
  end
  local moonrpc = require "moonrpc"
  local chunk, err = loadfile(pos[1])
  if not chunk then die(2, err) end
  local reg
  if opts.registry then
    local e
    reg, e = moonrpc.registry(opts.registry)
    if not reg then die(2, tostring(e)) end
  end
  local s = moonrpc.server{ registry = reg, ttl = tonumber(opts.ttl or 10),
                            reuseport = opts.reuseport or nil }
  local services = chunk(s, table.unpack(pos, 2))
  if type(services) == "table" then
    for name, handlers in pairs(services) do
      if type(handlers) == "table" then s:register(name, handlers, handlers.__metadata) end
    end
  end
  local addr, e, reg_err = s:serve(opts.listen or "tcp@127.0.0.1:8972")
  if not addr then die(3, tostring(e)) end
  if reg_err then io.stderr:write("moonrpc: registry: ", tostring(reg_err), " (retrying)\n") end
  io.write("listening on ", addr, "\n")
  io.stdout:flush()
  util.ready(ready_file, addr)
  -- SIGINT/SIGTERM: unregister, let calls in flight finish, close.
  local function stop(name)
    io.stderr:write("moonrpc: ", name, ": shutting down\n")
    util.ready_end(ready_file)
    s:shutdown(tonumber(opts["shutdown-timeout"] or 10))
    if reg then reg:close() end
  end
  moonrpc.signal("SIGINT", stop)
  moonrpc.signal("SIGTERM", stop)
  -- A worker of --workers N stops when its supervisor is gone.
  if workers.me() then workers.watch_parent(function() stop("supervisor gone") end) end
  moonrpc.run()
end

