--- moonrpc.sched: coroutines, futures, timers and the loop.
--
-- Every incoming request and every `moonrpc.spawn` runs in a pooled
-- coroutine. A wait inside such a coroutine yields (with a private tag, so
-- users' own coroutines keep working) and is resumed from Lua when its event
-- arrives; a wait anywhere else (a script's top level, the REPL) runs the loop
-- until the event arrives. C never resumes a coroutine: the C callbacks call
-- the dispatchers below, which do.
-- @module moonrpc.sched

local core = require "moonrpc.core"

local M = {}

local create, resume, yield, running, status =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.running, coroutine.status
local pack, unpack = table.pack, table.unpack

local TAG = setmetatable({}, { __name = "moonrpc.wait" })  -- our yields
local IDLE = setmetatable({}, { __name = "moonrpc.idle" }) -- a pooled worker
local ours = setmetatable({}, { __mode = "k" })            -- coroutines we run
local pool, POOL_MAX = {}, 512

local next_id = 0
local completions = {} -- id -> function(code, msg, value, meta)
local timers = {}      -- id -> function()
local timer_handles = {}

--- A fresh integer id for completions and timers.
function M.id()
  next_id = next_id + 1
  return next_id
end

local function report(where, err)
  io.stderr:write("moonrpc: error in ", where, ": ", tostring(err), "\n")
end

-- A worker runs one job after another; between jobs it waits in the pool.
local function worker(fn, a, b, c)
  local co = running()
  while true do
    local ok, err = pcall(fn, a, b, c)
    if not ok then report("coroutine", err) end
    if #pool >= POOL_MAX then return end
    pool[#pool + 1] = co
    fn, a, b, c = yield(IDLE)
  end
end

local defer -- forward

-- Looks at what a resumed coroutine did: finished, waits for us, or yielded
-- something of its own (then it is resumed on the next loop turn).
local function step(co, ok, tag)
  if not ok then
    ours[co] = nil
    report("coroutine", tag)
  elseif tag ~= TAG and tag ~= IDLE and status(co) == "suspended" then
    defer(co)
  end
end

--- Runs `fn(a, b, c)` now in a pooled coroutine.
function M.start(fn, a, b, c)
  local co = pool[#pool]
  if co then
    pool[#pool] = nil
  else
    co = create(worker)
    ours[co] = true
  end
  step(co, resume(co, fn, a, b, c))
end

--- Resumes a coroutine that waits with our tag.
function M.wake(co, ...)
  step(co, resume(co, ...))
end

--- True when the running coroutine is one of ours (a wait may yield).
function M.in_ours()
  local co = running()
  return co ~= nil and ours[co] == true
end

-- ---- timers ---------------------------------------------------------------

--- Calls `fn()` once after `seconds`; returns an id for `cancel`. A
-- `weak` timer does not keep the loop running on its own.
function M.after(seconds, fn, weak)
  local id = M.id()
  timers[id] = fn
  timer_handles[id] = core.timer_start(seconds * 1000, id, weak)
  return id
end

--- Stops a timer that has not fired yet.
function M.cancel(id)
  local h = timer_handles[id]
  if h then
    timer_handles[id], timers[id] = nil, nil
    core.timer_stop(h)
  end
end

-- The signal watches in force, each held until its stop(): the C watch
-- stops when collected, and callers such as `moonrpc serve` keep no
-- reference to what moonrpc.signal returned.
local watches = {}

--- Calls `fn(name)` in a new coroutine (so it may wait) each time signal
-- `name` arrives ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1",
-- "SIGUSR2"). While watched, the signal no longer ends the process. The
-- watch does not keep the loop running, and lasts until its :stop(), whether
-- or not the caller keeps it. Returns the watch, or nil, err.
function M.signal(name, fn)
  if type(fn) ~= "function" then error("bad argument #2 to 'signal' (function expected)", 2) end
  local id = M.listen(function(sig) M.start(fn, sig) end)
  local ok, h, code, msg = pcall(core.signal_start, name, id)
  if not ok then
    M.unlisten(id)
    error("bad argument #1 to 'signal' (unknown signal " .. tostring(name) .. ")", 2)
  end
  if not h then
    M.unlisten(id)
    return nil, require("moonrpc.errors").new(code, msg)
  end
  local w
  w = {
    stop = function()
      watches[w] = nil
      M.unlisten(id)
      h:stop()
    end,
  }
  watches[w] = true
  return w
end

defer = function(co)
  M.after(0, function() M.wake(co) end)
end

-- ---- futures ---------------------------------------------------------------

local Future = {}
Future.__index = Future

--- A one-shot event carrying values.
function M.future()
  return setmetatable({ done = false, waiters = {} }, Future)
end

--- Completes the future (once; later calls are ignored) and wakes waiters.
function Future:set(...)
  if self.done then return end
  self.done = true
  self.values = pack(...)
  local ws = self.waiters
  self.waiters = nil
  for i = 1, #ws do
    local w = ws[i]
    if not w.fired then
      w.fired = true
      if w.timer then M.cancel(w.timer) end
      M.wake(w.co, true)
    end
  end
end

--- The values the future was completed with.
function Future:get()
  local v = self.values
  return unpack(v, 1, v.n)
end

-- Running the loop from inside one of its callbacks is refused. The usual
-- way to get there is a coroutine of the user's own (coroutine.wrap or
-- create) resumed by moonrpc code, such as a handler: a wait inside it
-- cannot yield to us (the yield would go to whoever resumed it), so the
-- message says what to do instead.
-- On a host's loop (moonrpc.use_loop), the host's callbacks are not ours:
-- `host_running`, set by use_loop, tells whether the host is inside its run
-- (uv.run()), where running the loop again would nest uv_run.
M.host_running = nil

local function must_not_block(level)
  if M.host_running and M.host_running() then
    error("moonrpc: cannot block inside uv.run() (a luv callback or the code it " ..
          "runs): luv is already running the loop; wait from a coroutine " ..
          "(moonrpc.spawn) or a handler instead", level + 1)
  end
  if not core.in_callback() then return end
  if running() and not M.in_ours() then
    error("moonrpc: cannot wait inside your own coroutine while moonrpc runs it " ..
          "from the loop (a handler or callback resumed it): start the code with " ..
          "moonrpc.spawn(fn, ...) instead of coroutine.wrap/create, so the wait can " ..
          "yield; or resume your coroutine from the script's top level", level + 1)
  end
  error("moonrpc: cannot block inside a callback; wait from a coroutine " ..
        "(moonrpc.spawn) or a handler instead", level + 1)
end

--- Runs the loop until `done()` is true or `seconds` pass. Returns
-- done(). Raises when nothing is left that could make it true.
function M.block_until(done, seconds)
  must_not_block(2)
  local expired, t = false, nil
  if seconds then t = M.after(seconds, function() expired = true end) end
  while not done() and not expired do
    if not core.run("once") and not done() and not expired then
      error("moonrpc: nothing left to wait for (the event can never come)", 2)
    end
  end
  if t and not expired then M.cancel(t) end
  return done()
end

--- Waits until the future is set, or `seconds` pass. Returns true when set.
-- Yields inside our coroutines; runs the loop anywhere else.
function Future:wait(seconds)
  if self.done then return true end
  if M.in_ours() then
    local w = { co = running() }
    self.waiters[#self.waiters + 1] = w
    if seconds then
      w.timer = M.after(seconds, function()
        if w.fired then return end
        w.fired = true
        M.wake(w.co, false)
      end)
    end
    return yield(TAG)
  end
  return M.block_until(function() return self.done end, seconds)
end

--- Sleeps for `seconds` (yields in a coroutine, runs the loop elsewhere).
function M.sleep(seconds)
  local f = M.future()
  M.after(seconds, function() f:set() end)
  f:wait()
end

-- ---- completions --------------------------------------------------------------

--- Registers `fn(code, msg, value, meta)` under a new id for a C completion.
function M.expect(fn)
  local id = M.id()
  completions[id] = fn
  return id
end

--- Forgets a registered completion (its C call failed to start).
function M.forget(id)
  completions[id] = nil
end

local listeners = {} -- id -> function(...), for repeating C events

--- Registers `fn(...)` under a new id for repeating C events (a watch).
function M.listen(fn)
  local id = M.id()
  listeners[id] = fn
  return id
end

function M.unlisten(id)
  listeners[id] = nil
end

-- ---- the dispatchers C calls -----------------------------------------------------

M.request_handler = nil -- set by moonrpc.server: function(handler, req, args)
M.push_handler = nil    -- set by moonrpc.xclient: function(client_id, ...)

core.set_dispatchers(
  function(handler, req, args) -- a request
    M.start(M.request_handler, handler, req, args)
  end,
  function(id, code, msg, value, meta) -- a completion
    local fn = completions[id]
    if fn then
      completions[id] = nil
      fn(code, msg, value, meta)
    end
  end,
  function(id) -- a timer
    local fn = timers[id]
    timers[id], timer_handles[id] = nil, nil
    if fn then fn() end
  end,
  function(client_id, service, method, value, meta) -- a server push
    if M.push_handler then M.push_handler(client_id, service, method, value, meta) end
  end,
  function(id, ...) -- a repeating event
    local fn = listeners[id]
    if fn then fn(...) end
  end)

--- Runs the loop until `stop()` is called or nothing is left to do.
function M.run()
  must_not_block(2)
  core.run("default")
end

function M.stop()
  core.stop()
end

--- Starts `fn(...)` in a new coroutine now and returns at its first wait.
function M.spawn(fn, ...)
  if type(fn) ~= "function" then error("bad argument #1 to 'spawn' (function expected)", 2) end
  local n, args = select("#", ...), pack(...)
  if n == 0 then M.start(fn) else M.start(function() fn(unpack(args, 1, n)) end) end
end

return M
