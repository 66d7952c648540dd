--- moonrpc.workers: one service in N worker processes on one address.
--
-- A moonrpc server runs one libuv loop and one Lua state, so it uses one
-- core. `moonrpc serve FILE --workers N` starts N workers, each a process
-- of its own (its own loop, its own Lua state: the service file runs once
-- in each), all listening on the same address with SO_REUSEPORT, so the
-- kernel spreads new connections over them. This process is the
-- supervisor, as nginx's master is:
--
--   * The first worker listens on the address asked for (port 0 picks
--     one); the others then listen on the address it got.
--   * With a registry, the supervisor registers each service once for the
--     address (not once per worker), with the metadata the workers report
--     through Reflection.Services, and keeps the leases alive.
--   * A worker that exits on its own (a crash, kill -9) is reported on
--     stderr and started again after a pause (0.5 s, doubling to 10 s while
--     workers keep dying within 5 s of starting); the others keep serving.
--   * SIGINT or SIGTERM: unregister, pass SIGTERM to every worker (each
--     drains its calls in flight), wait for them, exit 0.
--   * A worker whose supervisor has gone (kill -9 of it) shuts down by
--     itself (see `watch_parent`).
--
-- State is per worker: tables a handler changes are that worker's alone.
-- Share state through something every worker reaches: a registry's KV, a
-- Redis, a database.
-- @module moonrpc.workers

local core = require "moonrpc.core"
local sched = require "moonrpc.sched"

local M = {}

local RESTART_MIN, RESTART_MAX, STABLE_S = 0.5, 10, 5

local function log(...)
  io.stderr:write("moonrpc: ", ...)
  io.stderr:write("\n")
end

--- Parses a --workers value: a positive integer or "auto" (the number of
-- CPUs). Returns the count, or nil.
function M.count(v)
  if v == nil then return 1 end
  if v == "auto" then return core.cpu_count() end
  local n = tonumber(v)
  if n and n >= 1 and n <= 1024 and n == math.floor(n) then return math.floor(n) end
  return nil
end

--- In a worker: which one it is, (index, count) from the environment the
-- supervisor set, or nil outside worker mode.
function M.me()
  local i, n = tonumber(os.getenv("MOONRPC_WORKER")), tonumber(os.getenv("MOONRPC_WORKERS"))
  if i and n then return i, n end
  return nil
end

--- In a worker: calls `fn()` (once) when the supervisor that started it is
-- gone, checking every second with a timer that does not keep the loop
-- alive.
function M.watch_parent(fn)
  local parent = core.getppid()
  local function check()
    if core.getppid() ~= parent then return fn() end
    sched.after(1, check, true)
  end
  sched.after(1, check, true)
end

local Pool = {}
Pool.__index = Pool

-- Starts worker `w` listening on `listen`; w.ready is set once it printed
-- "listening on ADDR" (w.addr), or with false when it exited before.
function Pool:_start(w, listen)
  local buf = ""
  w.ready = sched.future()
  w.addr, w.started = nil, core.now()
  local id, ends, handle = nil, 0, nil
  local function finish_one(proc)
    handle = handle or proc
    ends = ends + 1
    if ends < 2 then return end
    sched.unlisten(id)
    if handle then handle:close() end
  end
  id = sched.listen(function(what, a, b)
    if what == "stdout" then
      if a == nil then return finish_one() end
      buf = buf .. a
      for line in buf:gmatch("([^\n]*)\n") do
        local addr = not w.addr and line:match("^listening on (%S+)")
        if addr then
          w.addr = addr
          w.ready:set(true)
        else
          io.stdout:write(line, "\n")
        end
      end
      buf = buf:match("[^\n]*$")
      io.stdout:flush()
    elseif what == "exit" then
      local proc = w.proc
      w.proc = nil
      if not w.ready.done then w.ready:set(false) end
      -- The handle closes once both the exit and the end of its stdout
      -- came, so the last lines a dying worker wrote are still passed on.
      finish_one(proc)
      -- A grandchild that inherited the pipe may hold it open: give up on
      -- the end of stdout after a second.
      sched.after(1, function() if ends == 1 then finish_one() end end, true)
      self:_exited(w, a, b)
    end
  end)
  local args = self.argv(listen)
  local env = { "MOONRPC_WORKER=" .. w.i, "MOONRPC_WORKERS=" .. #self.workers }
  local proc, code, msg = core.spawn(args[1], { table.unpack(args, 2) }, env, id)
  if not proc then
    sched.unlisten(id)
    w.ready:set(false)
    return nil, code .. ": " .. msg
  end
  w.proc, w.pid, handle = proc, proc:pid(), proc
  return true
end

-- A worker ended: during a stop that is expected; otherwise report it and
-- start it again, after a pause that grows while workers keep dying young.
function Pool:_exited(w, status, signal)
  w.exits = (w.exits or 0) + 1
  if self.stopping then
    if self.on_change then self.on_change() end
    return
  end
  local how = signal and ("killed by " .. signal)
    or (status == -1 and "could not be started") or ("exited with status " .. status)
  local lived = (core.now() - w.started) / 1000
  if lived >= STABLE_S then w.pause = RESTART_MIN
  else w.pause = math.min((w.pause or RESTART_MIN / 2) * 2, RESTART_MAX) end
  log("worker ", w.i, " (pid ", w.pid, ") ", how, "; restarting it in ", w.pause, " s")
  self.restarts = self.restarts + 1
  sched.after(w.pause, function()
    if self.stopping then return end
    local ok, err = self:_start(w, self.addr)
    if not ok then
      -- Spawning failed (EAGAIN, EMFILE, the binary briefly gone): try
      -- again after a longer pause, as for a worker that died young.
      log("worker ", w.i, ": cannot start: ", err)
      w.started = core.now()
      return self:_exited(w, -1, nil)
    end
    sched.spawn(function()
      if w.ready:wait() and w.ready:get() then
        log("worker ", w.i, " (pid ", w.pid, ") serves again")
      end
    end)
  end)
end

--- Starts `n` workers; `argv(listen)` gives the command line of one
-- ({file, args...}) listening on `listen`. Waits (in a coroutine, or
-- running the loop) until all listen. Returns the pool and the address,
-- or nil and a message.
function M.start(n, listen, argv)
  local self = setmetatable({ workers = {}, argv = argv, restarts = 0 }, Pool)
  for i = 1, n do self.workers[i] = { i = i } end
  for i, w in ipairs(self.workers) do
    local ok, err = self:_start(w, self.addr or listen)
    if ok then
      w.ready:wait(30)
      ok = w.ready.done and w.ready:get()
      err = w.ready.done and "it exited before it listened" or "it did not listen within 30 s"
    end
    if not ok then
      self.stopping = true
      self:_kill_all("SIGKILL")
      return nil, "worker " .. i .. ": " .. err
    end
    self.addr = self.addr or w.addr
  end
  return self, self.addr
end

function Pool:_kill_all(sig)
  for _, w in ipairs(self.workers) do
    if w.proc then w.proc:kill(sig) end
  end
end

--- The pids of the workers running now, in worker order.
function Pool:pids()
  local out = {}
  for _, w in ipairs(self.workers) do
    if w.proc then out[#out + 1] = w.pid end
  end
  return out
end

--- Stops every worker: SIGTERM (each drains), then SIGKILL for those still
-- running after `timeout` seconds. Waits until all have exited.
function Pool:stop(timeout)
  self.stopping = true
  local done = sched.future()
  local function check()
    for _, w in ipairs(self.workers) do if w.proc then return end end
    if not done.done then done:set() end
  end
  self.on_change = check
  self:_kill_all("SIGTERM")
  check()
  if not done:wait(timeout) then
    log("workers still running after ", timeout, " s: killing them")
    self:_kill_all("SIGKILL")
    done:wait()
  end
end

--- The command line of this same `moonrpc` command (interpreter, script)
-- followed by the lists `...`, for a worker.
function M.self_argv(...)
  local lo = 0
  while arg[lo - 1] do lo = lo - 1 end
  local cmd = {}
  for i = lo, 0 do cmd[#cmd + 1] = arg[i] end
  for _, list in ipairs { ... } do
    for _, a in ipairs(list) do cmd[#cmd + 1] = a end
  end
  return cmd
end

local function die(code, ...)
  log(...)
  os.exit(code)
end

--- The supervising command: starts `o.n` workers with `o.argv(listen)` on
-- `o.listen`, registers the address's services once in `o.registry` (a
-- URL; the services and their metadata come from the workers'
-- Reflection.Services) under `o.ttl`, prints "listening on ADDR (N
-- workers: pids ...)", restarts workers that die, and on SIGINT/SIGTERM
-- unregisters, stops the workers (each drains for up to `o.timeout` s) and
-- returns. Exits 3 when the workers cannot start, 2 for a bad registry.
-- `o.ready_file`: written with the address once registered (see
-- moonrpc.cli.util.ready), removed on the way out.
function M.supervise(o)
  local moonrpc = require "moonrpc"
  local pool, addr = M.start(o.n, o.listen or "tcp@127.0.0.1:8972", o.argv)
  if not pool then die(3, addr) end
  local reg, names = nil, {}
  if o.registry then
    local e
    reg, e = moonrpc.registry(o.registry)
    if not reg then pool:stop(o.timeout); die(2, tostring(e)) end
    local xc = moonrpc.xclient("Reflection", moonrpc.Failfast, moonrpc.RandomSelect,
                               moonrpc.peer2peer(addr), { timeout = 5 })
    local reply, err = xc:call("Services", nil)
    xc:close()
    if not reply then pool:stop(o.timeout); die(3, "reflection of the workers: ", tostring(err)) end
    for _, svc in ipairs(reply.services or {}) do
      local ok, rerr = reg:register(svc.name, addr, svc.metadata, o.ttl)
      names[#names + 1] = svc.name
      if not ok then log("registry: ", tostring(rerr), " (retrying)") end
    end
  end
  io.write("listening on ", addr, " (", o.n, " workers: pids ", table.concat(pool:pids(), " "), ")\n")
  io.stdout:flush()
  local util = require "moonrpc.cli.util"
  util.ready(o.ready_file, addr)
  local stopping = false
  local function stop(name)
    if stopping then return end
    stopping = true
    util.ready_end(o.ready_file)
    log(name, ": shutting down ", o.n, " workers")
    if reg then
      for _, svc in ipairs(names) do reg:unregister(svc, addr) end
      reg:close()
    end
    pool:stop(o.timeout + 2)
  end
  local sigs = { moonrpc.signal("SIGINT", stop), moonrpc.signal("SIGTERM", stop) }
  moonrpc.run()
  for _, w in ipairs(sigs) do w.stop() end
end

return M
