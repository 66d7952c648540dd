--- A service for `moonrpc serve FILE --workers N` in workers_spec.lua: each
-- reply says which worker process answered.
--   Who.Pid {}     -> {pid = PID, worker = MOONRPC_WORKER}
--   Who.Slow {s}   sleeps s seconds -> {pid = PID}
--   Who.Count {}   -> {n = Pid calls this worker answered, pid = PID} (state
--                     is per worker)
local core = require "moonrpc.core"
local moonrpc = require "moonrpc"
local pid, count = core.getpid(), 0
return {
  Who = {
    __metadata = "group=workers&weight=3",
    Pid = function() count = count + 1; return { pid = pid, worker = os.getenv("MOONRPC_WORKER") } end,
    Slow = function(_, a) moonrpc.sleep(a.s); return { pid = pid } end,
    Count = function() return { n = count, pid = pid } end,
  },
}
