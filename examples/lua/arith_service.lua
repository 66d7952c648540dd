-- examples/lua/arith_service.lua: the Arith service of rpcx's examples,
-- written in Lua. Run it with
--   moonrpc serve examples/lua/arith_service.lua --listen tcp@127.0.0.1:8972
-- The script returns its services; `moonrpc serve` registers and serves them
-- (with --registry URL it also registers them in that registry).

local server = ... -- `moonrpc serve` passes the server it runs
local Arith = {}

-- Each reply says which instance served it, in the reply metadata.
local function served_by(ctx)
  if server then ctx:set_meta("served_by", server:addresses()[1]) end
end

-- Go: func (t *Arith) Mul(ctx context.Context, args *Args, reply *Reply) error
function Arith.Mul(ctx, args)
  served_by(ctx)
  return { C = args.A * args.B }
end

function Arith.Div(ctx, args)
  if args.B == 0 then error("divide by zero") end
  return { C = args.A // args.B }
end

-- A slow method, to show calls in flight at once.
function Arith.SlowMul(ctx, args)
  served_by(ctx)
  require("moonrpc").sleep(args.ms / 1000)
  return { C = args.A * args.B }
end

return { Arith = Arith }
