-- moonrpc wait: blocks until servers are ready, so a shell script that
-- starts them in the background can go on once they answer.

local USAGE = [[
usage: moonrpc wait TARGET... [--timeout S]

Waits until every TARGET is ready, then exits 0; after --timeout seconds
(default 10) it exits 1 naming the ones that are not. A TARGET is
  ADDR  an rpcx address (tcp@127.0.0.1:8972, unix@/path): ready once it
        answers a call (any answer, an error too: a Go rpcx server or the
        gateway counts as well as a moonrpc server);
  PATH  a file, ready once it exists and is not empty: the --ready-file of
        moonrpc serve, registry, echo and gateway, written once they listen
        (and, for serve --registry, have registered).

examples:
  moonrpc serve examples/lua/arith_service.lua --registry moonrpc://127.0.0.1:9000 \
      --ready-file /tmp/arith.ready &
  moonrpc wait /tmp/arith.ready
  moonrpc gateway --registry moonrpc://127.0.0.1:9000 &
  moonrpc wait tcp@127.0.0.1:9981 --timeout 5
]]

local POLL = 0.05 -- seconds between two tries

return function(args, util)
  local opts, targets = util.getopts(args, { timeout = "value", help = "flag" })
  if opts.help then io.write(USAGE); os.exit(0) end
  if #targets == 0 then io.stderr:write(USAGE); os.exit(2) end
  local timeout = tonumber(opts.timeout or 10)
  if not timeout or timeout <= 0 then util.die(2, "--timeout takes seconds, not '", opts.timeout, "'") end
  local moonrpc = require "moonrpc"
  local deadline = moonrpc.now() + timeout * 1000

  -- One try at each kind of target: true, or false and why not.
  local function file_ready(path)
    local f = io.open(path)
    if not f then return false, "no file " .. path end
    local first = f:read("l")
    f:close()
    if not first or first == "" then return false, path .. " is empty" end
    return true
  end

  local function addr_ready(addr)
    local left = math.max(0.1, (deadline - moonrpc.now()) / 1000)
    local xc = moonrpc.xclient("Reflection", moonrpc.Failfast, moonrpc.RandomSelect,
      moonrpc.peer2peer(addr), { timeout = math.min(1, left), connect_timeout = math.min(1, left) })
    local _, err = xc:call("Services", nil)
    xc:close()
    -- An error the server sent back is an answer: it is listening.
    if err and err.code ~= "EREMOTE" then return false, tostring(err) end
    return true
  end

  local pending = {}
  for _, t in ipairs(targets) do
    pending[#pending + 1] = { name = t, try = t:match("^%w+@.") and addr_ready or file_ready }
  end
  while true do
    local still = {}
    for _, p in ipairs(pending) do
      local ok, why = p.try(p.name)
      if not ok then p.why = why; still[#still + 1] = p end
    end
    pending = still
    if #pending == 0 then return end
    if moonrpc.now() >= deadline then
      local names = {}
      for _, p in ipairs(pending) do names[#names + 1] = p.name .. " (" .. p.why .. ")" end
      util.die(1, "wait: not ready after ", timeout, " s: ", table.concat(names, ", "))
    end
    moonrpc.sleep(POLL)
  end
end
