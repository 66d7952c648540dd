-- moonrpc echo: the Echo.Echo service that `moonrpc bench` calls.

local USAGE = [[
usage: moonrpc echo [--lua] [--listen ADDR] [--workers N|auto] [--ready-file PATH]

Serves Echo.Echo, which sends back what it gets, for benchmarks: with a C
handler (the moonrpc-echo program, default) or with a Lua handler (--lua),
on ADDR (default tcp@127.0.0.1:8972). --workers N serves the one address
from N loops (auto: one per CPU) with SO_REUSEPORT: N threads of the C
program, or N worker processes of the Lua one under a supervisor (as
moonrpc serve --workers). The Lua one also serves Echo.Memory, the Lua
state's memory in KiB after a full collection (moonrpc bench --lua-memory
samples it; with --workers, that of the worker the connection reached).
--ready-file PATH: the address is written to PATH once it listens
(removed at start; moonrpc wait PATH waits for it).

examples:
  moonrpc echo --listen tcp@127.0.0.1:8972 &
  moonrpc bench --addr tcp@127.0.0.1:8972 -c 100 -d 5
  moonrpc echo --lua --listen tcp@127.0.0.1:8973
  moonrpc echo --workers 2 --listen tcp@127.0.0.1:8972
  moonrpc call tcp@127.0.0.1:8973 Echo.Memory
]]

return function(args, util)
  local die, getopts, find_exe, exec = util.die, util.getopts, util.find_exe, util.exec
  local opts = getopts(args, { listen = "value", lua = "flag", workers = "value",
                               reuseport = "flag", help = "flag", ["ready-file"] = "value" })
  if opts.help then io.write(USAGE); os.exit(0) end
  local ready_file = opts["ready-file"]
  util.ready_start(ready_file)
  local listen = opts.listen or "tcp@127.0.0.1:8972"
  local workers = require "moonrpc.workers"
  local n = workers.count(opts.workers)
  if not n then die(2, "--workers takes a count or 'auto', not '", opts.workers, "'") end
  if not opts.lua then
    local argv = { "--listen", listen, "--workers", tostring(n) }
    if ready_file then argv[#argv + 1] = "--ready-file"; argv[#argv + 1] = ready_file end
    exec(find_exe("moonrpc-echo"), argv)
  end
  if n > 1 then
    return workers.supervise{ n = n, listen = listen, timeout = 5, ready_file = ready_file, argv = function(l)
      return workers.self_argv({ "echo", "--lua", "--listen", l, "--reuseport" })
    end }
  end
  local moonrpc = require "moonrpc"
  local s = moonrpc.server{ reuseport = opts.reuseport or nil }
  -- Go's []byte echo: msgpack bin and raw bytes come back unchanged; a JSON
  -- value is sent back as it came.
  s:register("Echo", {
    Echo = function(ctx, args)
      if ctx.serialize == "json" or type(args) ~= "string" then return args end
      return moonrpc.bin(args)
    end,
    -- For a soak (moonrpc bench --lua-memory): the memory this Lua state
    -- holds, in KiB, after a full collection, so garbage not yet collected
    -- does not hide (or fake) growth.
    Memory = function()
      collectgarbage("collect")
      return collectgarbage("count")
    end,
  })
  local addr, e = s:serve(listen)
  if not addr then die(3, tostring(e)) end
  io.write("listening on ", addr, " (Lua handler)\n")
  io.stdout:flush()
  util.ready(ready_file, addr)
  if workers.me() then workers.watch_parent(function() s:close() end) end
  moonrpc.run()
end

