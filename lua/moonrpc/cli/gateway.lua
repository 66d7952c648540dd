-- moonrpc gateway: server-side discovery. Runs moonrpc-gateway (the C
-- program in scripts/gateway/gateway_main.c, over core/include/moonrpc/
-- gateway.h) in this process's place, so signals reach it directly.

local USAGE = [[
usage: moonrpc gateway --registry URL [--listen ADDR] [--selector NAME]
                       [--timeout S] [--group NAME] [--retries N] [--failfast]
                       [--http-idle S] [--conns N] [--ready-file PATH]

Takes rpcx frames from any client and HTTP calls on one port (ADDR, default
tcp@127.0.0.1:9981) and forwards each to an instance of its service listed
in the registry at URL (moonrpc://, etcd:// or redis://), chosen by the
selector (RoundRobin, RandomSelect, WeightedRoundRobin, WeightedICMP,
ConsistentHash; default RoundRobin). Payloads go through untouched. A
transport failure is retried on another instance (--retries, default 2)
unless --failfast; --timeout bounds calls that carry no __ServerTimeout
(default 10 s). SIGINT or SIGTERM stops it gracefully: calls in flight, rpcx
and HTTP, are answered first.

HTTP: POST /Service/Method with a JSON body answers JSON; rpcx's X-RPCX-*
headers (X-RPCX-ServicePath, -ServiceMethod, -SerializeType, -Meta) carry
any payload. An idle keep-alive connection is closed after --http-idle
seconds (default 60); a request that has not all come 30 s after its first
byte gets 408. --conns N opens N connections to each instance and spreads
calls over them (default 1), so an address served by several workers
(moonrpc serve --workers) uses them all. --ready-file PATH: the address
is written to PATH once listening (moonrpc wait PATH waits for it).

examples:
  moonrpc gateway --listen tcp@127.0.0.1:9981 --registry redis://127.0.0.1:6379/rpcx
  moonrpc call tcp@127.0.0.1:9981 Arith.Mul '{A = 7, B = 8}'
  curl -d '{"A":7,"B":8}' http://127.0.0.1:9981/Arith/Mul
]]

return function(args, util)
  local opts = util.getopts(args, { listen = "value", registry = "value", selector = "value",
    timeout = "value", group = "value", retries = "value", failfast = "flag", ["http-idle"] = "value", conns = "value", help = "flag",
    ["ready-file"] = "value" })
  if opts.help then io.write(USAGE); os.exit(0) end
  if not opts.registry then util.die(2, "gateway needs --registry URL (moonrpc gateway --help)") end
  local argv = {}
  for _, name in ipairs { "listen", "registry", "selector", "timeout", "group", "retries", "http-idle", "conns",
                        "ready-file" } do
    if opts[name] then
      argv[#argv + 1] = "--" .. name
      argv[#argv + 1] = opts[name]
    end
  end
  if opts.failfast then argv[#argv + 1] = "--failfast" end
  util.exec(util.find_exe("moonrpc-gateway"), argv)
end
