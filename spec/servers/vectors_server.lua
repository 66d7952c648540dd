--- spec/servers/vectors_server.lua: a moonrpc server with the services of
-- the Go server that recorded ../shared/rpcx-vectors, plus a "Bad"
-- service for the bad-input spec.
--
--     lua5.4 spec/servers/vectors_server.lua [ADDR] [limit=N ...]
--
-- ADDR defaults to tcp@127.0.0.1:0 ("-" also means the default). Each
-- limit=N pair (max_frame=4096, max_depth=32, ...) is passed to
-- moonrpc.server. The first line written to stdout is
-- "listening on tcp@127.0.0.1:PORT". SIGTERM stops it.
local moonrpc = require "moonrpc"

local addr = arg[1]
if addr == nil or addr == "-" then addr = "tcp@127.0.0.1:0" end
local opts = {}
for i = 2, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(%d+)$")
  if not k then error("bad option '" .. arg[i] .. "' (name=number expected)") end
  opts[k] = tonumber(v)
end

local s = moonrpc.server(opts)

-- The Go server's Arith: Args{A, B int}, Reply{C int}.
s:register("Arith", {
  Mul = function(_, args) return { C = args.A * args.B } end,
  Div = function(_, args)
    -- Go's Div sets no field and returns an error: rpcx still sends the
    -- (zero) reply as the payload beside __rpcx_error__.
    if args.B == 0 then return { C = 0 }, "divide by zero" end
    return { C = args.A // args.B }
  end,
})

-- The Go server's Echo: Echo([]byte) -> []byte, Str(string) -> string,
-- Meta copies the request metadata into the reply metadata.
s:register("Echo", {
  Echo = function(_, args) return moonrpc.bin(args) end,
  Str = function(_, args) return args end,
  Meta = function(ctx, args)
    for k, v in pairs(ctx.meta) do ctx:set_meta(k, v) end
    return moonrpc.bin(args)
  end,
})

-- Handlers that misbehave, for spec/badinput_spec.lua.
s:register("Bad", {
  Raise = function() error("boom") end,
  Func = function() return function() end end,
})

local bound = assert(s:serve(addr))
io.stdout:write("listening on ", bound, "\n")
io.stdout:flush()
moonrpc.run()
