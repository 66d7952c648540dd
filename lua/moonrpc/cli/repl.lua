-- moonrpc repl: the interactive shell (lua/moonrpc/repl.lua) on a target:
-- one server (ADDR) or every service a registry knows (--registry URL).

local USAGE = [[
usage: moonrpc repl [ADDR | --registry URL] [--timeout S] [--history FILE]

An interactive shell for calling services. Line editing, history (saved
in FILE, default ~/.moonrpc_history) and Tab completion of service and
method names come from libedit.

  Arith.Mul{A = 7, B = 8}     calls Arith.Mul and prints the reply
  go Arith.SlowMul{A = 1, B = 2, ms = 3000}
                              starts the call; its reply prints when it comes
  =1 + 1, x = 2               plain Lua (moonrpc is in scope)

A chunk that is not finished (function f(), Arith.Mul{A = 1,) goes on
under the "..>" prompt. Tab also completes Lua globals and fields
(moonrpc.<Tab>). help prints a summary; quit, exit or Ctrl-D leaves.
Ctrl-C cancels the call in progress or stops the Lua code running (at
the prompt, drops the line). On start it says whether the target
answered (a warning on stderr when it did not). Without a terminal, the
exit status is 1 when a line failed (an error was printed), else 0. ADDR defaults to tcp@127.0.0.1:8972. With --registry each
service is found through the registry (Failover, RoundRobin). --timeout is
per call, in seconds (default 10).

examples:
  moonrpc repl tcp@127.0.0.1:8972
  moonrpc repl --registry moonrpc://127.0.0.1:9000
  echo 'Arith.Mul{A = 7, B = 8}' | moonrpc repl   # without a terminal
]]

return function(args, util)
  local opts, pos = util.getopts(args, { registry = "value", timeout = "value",
    history = "value", help = "flag" })
  if opts.help then io.write(USAGE); os.exit(0) end
  if #pos > 1 or (pos[1] and opts.registry) then io.stderr:write(USAGE); os.exit(2) end
  local timeout = tonumber(opts.timeout or 10)
  if not timeout or timeout <= 0 then util.die(2, "--timeout needs a positive number of seconds") end
  local history = opts.history
  if not history and os.getenv("HOME") then history = os.getenv("HOME") .. "/.moonrpc_history" end
  local repl = require "moonrpc.repl"
  local r, err = repl.new{ addr = pos[1], registry = opts.registry, timeout = timeout }
  if not r then util.die(3, tostring(err)) end
  -- The banner says what the shell talks to and whether it answered; the
  -- warning goes to stderr, so that piped output stays the replies only.
  local ok, rerr = r:refresh()
  local banner, warning = r:banner(ok, rerr)
  local tty = require("moonrpc.core").edit_isatty()
  if tty then io.write(banner, "\n") end
  if warning then io.stderr:write(warning, "\n") end
  r:run(history ~= "" and history or nil)
  -- Piped input: a line that failed (a call's error, a Lua error) makes
  -- the exit status 1, so that scripts notice.
  os.exit((not tty and r.failed) and 1 or 0)
end
