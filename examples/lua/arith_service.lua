-- examples/lua/arith_service.lua: the Arith service of rpcx's examples,
-- written in Lua. Run it with
--   moonrpc serve examples/lua/arith_service.lua --listen tcp@127.0.0.1:8972
-- The script returns its services; `moonrpc serve` registers and serves them.

local Arith = {}

-- Go: func (t *Arith) Mul(ctx context.Context, args *Args, reply *Reply) error
function Arith.Mul(ctx, args)
  return { C = args.A * args.B }
end

function Arith.Div(ctx, args)
  if args.B == 0 then error("divide by zero") end
  return { C = args.A // args.B }
end

-- A slow method, to show calls in flight at once.
function Arith.SlowMul(ctx, args)
  require("moonrpc").sleep(args.ms / 1000)
  return { C = args.A * args.B }
end

return { Arith = Arith }
