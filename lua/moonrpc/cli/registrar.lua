-- moonrpc.cli.registrar: `moonrpc registrar --config FILE [--registry URL]`,
-- third-party registration (moonrpc.registrar) as a long-running command.
-- It runs until SIGINT or SIGTERM, then unregisters what it registered and
-- exits 0; a second signal exits at once (the entries then expire by TTL).
-- A bad configuration exits 2 with a message that names the field.

local USAGE = [[
usage: moonrpc registrar --config FILE [--registry URL]

Health-checks the rpcx instances FILE lists with heartbeat frames, registers
each one after `rise` consecutive good checks and unregisters it after `fall`
consecutive failures. SIGINT or SIGTERM unregisters everything and exits.

  --config FILE    a Lua file returning the table below, or a .json file
                   with the same shape (required)
  --registry URL   overrides the file's registry
  --help           this text

FILE (the defaults: interval 2 s, timeout 1 s, rise 1, fall 2, ttl 10 s;
each instance may override any of them):

  return {
    registry = "etcd://127.0.0.1:2379/rpcx_test",   -- or moonrpc://, redis://
    interval = 2, timeout = 1, rise = 1, fall = 2, ttl = 10,
    instances = {
      { service = "Arith", addr = "tcp@127.0.0.1:8972", meta = "weight=10&group=a" },
      { service = { "Arith", "Echo" }, addr = "tcp@127.0.0.1:8973" },
    },
  }

example:
  moonrpc registrar --config registrar.lua
]]

return function(args, util)
  local opts, pos = util.getopts(args, { config = "value", registry = "value", help = "flag" })
  if opts.help then
    io.write(USAGE)
    os.exit(0)
  end
  if not opts.config then util.die(2, "registrar: --config FILE is required (moonrpc registrar --help)") end
  if pos[1] then util.die(2, "registrar: unexpected argument '", pos[1], "' (moonrpc registrar --help)") end

  local moonrpc = require "moonrpc"
  local registrar = require "moonrpc.registrar"
  local cfg, err = registrar.load(opts.config)
  if not cfg then util.die(2, "registrar: ", err) end
  if opts.registry then
    if not opts.registry:match("^%a+://.") then
      util.die(2, "registrar: --registry: expected a URL like etcd://127.0.0.1:2379/rpcx_test, got '",
               opts.registry, "'")
    end
    cfg.registry = opts.registry
  end
  local checked, msg = registrar.check(cfg)
  if not checked then util.die(2, "registrar: ", opts.config, ": ", msg) end
  local r, e = registrar.new(cfg)
  if not r then util.die(2, "registrar: ", tostring(e)) end

  local watches, signalled = {}, false
  local function on_signal(name)
    if signalled then
      io.stderr:write("registrar: ", name, " again: exiting now (entries expire by TTL)\n")
      os.exit(1)
    end
    signalled = true
    io.stderr:write("registrar: ", name, ": unregistering and exiting\n")
    r:stop()
    -- Nothing else is left once the registry has closed: moonrpc.run returns.
    for _, w in ipairs(watches) do w.stop() end
  end
  for _, name in ipairs { "SIGINT", "SIGTERM" } do
    local w, werr = moonrpc.signal(name, on_signal)
    if not w then util.die(3, "registrar: cannot watch ", name, ": ", tostring(werr)) end
    watches[#watches + 1] = w
  end

  local n = 0
  for _, c in ipairs(checked.instances) do n = n + #c.services end
  io.stderr:write(("registrar: checking %d instance(s) for %s\n"):format(n,
    type(checked.registry) == "string" and checked.registry or "the registry"))
  io.stderr:flush()
  r:start()
  moonrpc.run()
end
