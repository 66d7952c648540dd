--- moonrpc.repl: the interactive shell behind `moonrpc repl`.
--
-- A line is one of:
--
--     Arith.Mul{A = 7, B = 8}      call Service.Method on the target, print the reply
--     Arith.Mul({A = 7, B = 8})    the same
--     go Arith.SlowMul{...}        start the call; "[1] started", and its reply
--                                  prints when it arrives ("[1] Arith.SlowMul -> ...")
--     =expr, or an expression      plain Lua: its values are printed
--     anything else                plain Lua (moonrpc is in scope)
--     help, quit, exit             what they say
--
-- An unfinished chunk (`function f()`, `Arith.Mul{A = 1,`) continues on
-- the next lines, under the continuation prompt, until it compiles (as
-- lua.c does: the compiler's error ends in "<eof>").
--
-- A name that is not a Lua global and starts with a capital letter is a
-- service: in plain Lua, `r, err = Arith.Mul{A = 1, B = 2}` calls too.
-- Errors print as "error CODE: message". Ctrl-C cancels the call in
-- progress (or interrupts Lua code, whether it waits in the loop or runs,
-- as `while true do end` does) and returns to the prompt; at the prompt it
-- clears the line. Ctrl-D exits.
--
-- The line editing is lua/src/ledit.c (libedit); without a terminal, lines
-- are read from stdin as they come. Everything but the terminal is here so
-- that it can be tested without one.
-- @module moonrpc.repl

local moonrpc = require "moonrpc"
local core = require "moonrpc.core"
local sched = require "moonrpc.sched"
local errors = require "moonrpc.errors"

local M = {}

-- ---- rendering ------------------------------------------------------------------

local function is_text(s)
  return utf8.len(s) ~= nil and not s:find("[%z\1-\8\11\12\14-\31\127]")
end

local function hex(s)
  local shown = #s > 256 and s:sub(1, 256) or s
  local h = shown:gsub(".", function(c) return string.format("%02x", c:byte()) end)
  if #s > 256 then h = h .. "..." end
  return "<hex " .. h .. " (" .. #s .. " bytes)>"
end

local function sort_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta == tb and (ta == "number" or ta == "string") then return a < b end
    return ta < tb
  end)
  return keys
end

local function is_array(t, keys)
  for i, k in ipairs(keys) do
    if k ~= i then return false end
  end
  return true
end

--- Renders a value for people: tables as Lua literals with nested tables
-- indented (short tables of plain values on one line), strings quoted,
-- binary strings (not UTF-8, or with control bytes) as hex, and
-- moonrpc.null as null.
function M.render(v, indent, seen)
  indent, seen = indent or "", seen or {}
  if v == moonrpc.null then return "null" end
  local t = type(v)
  if t == "string" then
    if is_text(v) then return (string.format("%q", v):gsub("\\\n", "\\n")) end
    return hex(v)
  end
  if errors.is(v) then return "error " .. tostring(v) end
  if t ~= "table" then return tostring(v) end
  if seen[v] then return "<cycle>" end
  seen[v] = true
  local keys = sort_keys(v)
  if #keys == 0 then seen[v] = nil; return "{}" end
  local array = is_array(v, keys)
  local parts, flat = {}, true
  local inner = indent .. "  "
  for i, k in ipairs(keys) do
    local val = v[k]
    if type(val) == "table" and val ~= moonrpc.null and next(val) ~= nil then flat = false end
    local r = M.render(val, inner, seen)
    if array then
      parts[i] = r
    else
      local key = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or ("[" .. M.render(k) .. "]")
      parts[i] = key .. " = " .. r
    end
  end
  seen[v] = nil
  local one = "{ " .. table.concat(parts, ", ") .. " }"
  if flat and #one + #indent <= 72 and not one:find("\n") then return one end
  return "{\n" .. inner .. table.concat(parts, ",\n" .. inner) .. "\n" .. indent .. "}"
end

--- The text of an error for the user: "error CODE: message".
function M.error_text(err)
  if errors.is(err) then return "error " .. tostring(err) end
  if type(err) == "table" and err.code then
    return "error " .. tostring(err.code) .. ": " .. tostring(err.message)
  end
  return "error: " .. tostring(err)
end

-- ---- parsing ---------------------------------------------------------------------

--- Splits a call line. Returns service, method, argument source (may be
-- "") and whether it starts with `go`; nil when the line is not a call.
-- `is_global(name)` says whether a name is a Lua value (then
-- `string.format(...)` stays plain Lua).
function M.parse_call(line, is_global)
  local rest = line:match("^%s*go%s+(.*)$")
  local go = rest ~= nil
  rest = rest or line
  local service, method, args = rest:match("^%s*([%a_][%w_]*)%.([%a_][%w_]*)%s*(.-)%s*;?%s*$")
  if not service or (is_global and is_global(service)) then return nil end
  if args ~= "" and not args:match("^[{(\"']") and not args:match("^%[=*%[") then return nil end
  if args:match("^%(") then
    local inner = args:match("^%((.*)%)$")
    if not inner then return nil end
    args = inner
  end
  return service, method, args, go
end

-- ---- the shell --------------------------------------------------------------------

local Repl = {}
Repl.__index = Repl

local HINT = "Type help for help, Tab to complete; Ctrl-D or quit to leave."

M.HELP = [[
  Service.Method{k = v, ...}   call and print the reply (or an error with its code)
  go Service.Method{...}       start a call; its reply prints when it arrives
  r, err = Service.Method{}    plain Lua calls too (moonrpc is in scope)
  =expr                        print a Lua value; an unfinished chunk continues
  Tab                          complete services, methods, Lua globals, fields
  Ctrl-C                       cancel the call or stop the code (at the prompt:
                               drop the line); Ctrl-D, quit or exit leaves]]

--- A shell. `opts`: addr (peer to peer) or registry (a URL or an open
-- registry), timeout (seconds per call, default 10), write (function(text)
-- for output; default: stdout, above the prompt when there is one).
function M.new(opts)
  local self = setmetatable({
    opts = opts, timeout = opts.timeout or 10, clients = {}, jobs = 0,
    services = {}, -- name -> { methods = {...} } for completion
    write = opts.write,
  }, Repl)
  if not self.write then
    self.write = function(text) io.write(text, text:sub(-1) == "\n" and "" or "\n"); io.stdout:flush() end
  end
  if opts.registry then
    local reg = opts.registry
    if type(reg) == "string" then
      local err
      reg, err = moonrpc.registry(reg)
      if not reg then return nil, err end
    end
    self.reg = reg
  else
    self.disc = moonrpc.peer2peer(opts.addr or "tcp@127.0.0.1:8972")
  end
  self.env = self:_env()
  return self
end

function Repl:_env()
  local env = { moonrpc = moonrpc, null = moonrpc.null, repl = self }
  return setmetatable(env, { __index = function(_, name)
    local v = _G[name]
    if v ~= nil then return v end
    if type(name) == "string" and (name:match("^%u") or self.services[name]) then
      return self:service(name)
    end
  end })
end

--- The xclient of `service` on the target (made on first use).
function Repl:client(service)
  local xc = self.clients[service]
  if xc then return xc end
  if self.reg then
    xc = moonrpc.xclient(service, moonrpc.Failover, moonrpc.RoundRobin,
                         moonrpc.registry_discovery(self.reg, nil, service), { timeout = self.timeout })
  else
    xc = moonrpc.xclient(service, moonrpc.Failtry, moonrpc.RandomSelect, self.disc, { timeout = self.timeout })
  end
  self.clients[service] = xc
  return xc
end

--- Calls service.method and waits; Ctrl-C (self:interrupt()) ends the wait
-- with ECANCELED. Returns reply, err, meta.
function Repl:call(service, method, args)
  local call = self:client(service):go(method, args)
  self:_learn(service, method)
  self.current = call
  local ok, reply, err, meta = pcall(call.wait, call)
  self.current = nil
  if not ok then call:discard(); error(reply, 0) end
  return reply, err, meta
end

--- A table standing for `service`: service.Method(args) calls.
function Repl:service(name)
  return setmetatable({}, {
    __index = function(_, method)
      return function(args) return self:call(name, method, args) end
    end,
    __tostring = function() return "<service " .. name .. ">" end,
  })
end

function Repl:_learn(service, method)
  local s = self.services[service]
  if not s then
    s = { methods = {} }
    self.services[service] = s
  end
  if method then
    for _, m in ipairs(s.methods) do if m == method then return end end
    s.methods[#s.methods + 1] = method
    table.sort(s.methods)
  end
end

-- Returns true when the server answered (even "no such service": a Go
-- rpcx server has no reflection), else false and the error.
local function reflect(xc, into)
  local reply, err = xc:call("Services", nil, { timeout = 2, retries = 0 })
  if err then return err.code == "EREMOTE", err end
  if type(reply) ~= "table" or type(reply.services) ~= "table" then return true end
  for _, s in ipairs(reply.services) do
    if type(s) == "table" and type(s.name) == "string" then
      into(s.name, type(s.methods) == "table" and s.methods or {})
    end
  end
  return true
end

--- Learns the services and methods of the target for completion (returns
-- true when the target answered, else false and the error): from
-- Reflection.Services (every moonrpc server answers it), and with a
-- registry from its list of every service (all a Go rpcx server offers).
-- Names the user calls are learned as they are called.
function Repl:refresh()
  local function into(name, methods)
    self:_learn(name)
    for _, m in ipairs(methods) do
      if type(m) == "string" then self:_learn(name, m) end
    end
  end
  if not self.reg then
    local xc = moonrpc.xclient("Reflection", moonrpc.Failfast, moonrpc.RandomSelect, self.disc)
    local ok, err = reflect(xc, into)
    xc:close()
    return ok, err
  end
  -- With a registry: every service it lists (any backend: "" lists every
  -- service under the base path), then each instance's own view.
  local list, lerr = self.reg:list("")
  local addrs, seen = {}, {}
  for _, inst in ipairs(type(list) == "table" and list or {}) do
    if type(inst.service) == "string" then self:_learn(inst.service) end
    if type(inst.addr) == "string" and not seen[inst.addr] and #addrs < 8 then
      seen[inst.addr] = true
      addrs[#addrs + 1] = inst.addr
    end
  end
  for _, a in ipairs(addrs) do
    local r = moonrpc.xclient("Reflection", moonrpc.Failfast, moonrpc.RandomSelect, moonrpc.peer2peer(a))
    reflect(r, into)
    r:close()
  end
  if not list then return false, lerr end
  return true
end

--- The lines to show on starting: the target, and whether it answered
-- (`ok`, `err` as refresh returned them). Returns the banner and, when the
-- target did not answer, a warning.
function Repl:banner(ok, err)
  local target = self.reg and ("registry " .. tostring(self.opts.registry))
    or (self.opts.addr or "tcp@127.0.0.1:8972")
  local names = {}
  for name in pairs(self.services) do names[#names + 1] = name end
  table.sort(names)
  local head = "moonrpc " .. tostring(moonrpc._VERSION) .. " on " .. target
  if not ok then
    return head .. "\n" .. HINT,
      "warning: " .. target .. " did not answer ("
      .. (type(err) == "table" and err.code and tostring(err.code) or tostring(err))
      .. "); calls fail until it does"
  end
  local known = #names > 0 and (#names .. (#names == 1 and " service: " or " services: ")
    .. table.concat(names, ", ")) or "no service listed"
  return head .. ": answered, " .. known .. "\n" .. HINT
end

--- Completion candidates for the word `text` (libedit's word: it ends at
-- byte `finish` of `line`): "Service." for service names, then
-- "Service.Method", and Lua globals.
function Repl:complete(text, line, start, finish)
  local out = {}
  local svc, prefix = text:match("^([%a_][%w_]*)%.([%w_]*)$")
  if svc and self.services[svc] then
    for _, m in ipairs(self.services[svc].methods) do
      if m:sub(1, #prefix) == prefix then out[#out + 1] = svc .. "." .. m end
    end
    return out
  end
  -- a.b.c<Tab>: the fields of the table a.b (read raw, and through
  -- __index tables, so that completing never runs code or makes a client)
  local path, field = text:match("^([%a_][%w_.]-)%.([%w_]*)$")
  if path then
    local t = self:_lookup(path)
    local seen = {}
    while type(t) == "table" do
      for k in next, t do
        if type(k) == "string" and k:match("^[%a_][%w_]*$") and k:sub(1, #field) == field and not seen[k] then
          seen[k] = true
          out[#out + 1] = path .. "." .. k
        end
      end
      local mt = getmetatable(t)
      t = type(mt) == "table" and rawget(mt, "__index") or nil
    end
    table.sort(out)
    return out
  end
  for name in pairs(self.services) do
    if name:sub(1, #text) == text then out[#out + 1] = name .. "." end
  end
  if text == "" then table.sort(out); return out end
  -- Lua globals: the user's (the shell's environment) and the standard ones
  local seen = {}
  for _, t in ipairs { self.env, _G } do
    for name in next, t do
      if type(name) == "string" and name:sub(1, #text) == text and not seen[name]
          and not self.services[name] then
        seen[name] = true
        out[#out + 1] = name
      end
    end
  end
  table.sort(out)
  return out
end

-- The value a dotted name has in the shell, read raw (nil when a part is
-- not a table): the user's globals first, then the standard ones.
function Repl:_lookup(path)
  local t
  for part in path:gmatch("[^.]+") do
    if t == nil then
      t = rawget(self.env, part)
      if t == nil then t = rawget(_G, part) end
    elseif type(t) == "table" then
      t = rawget(t, part)
    else
      return nil
    end
    if t == nil then return nil end
  end
  return t
end

-- ---- evaluating lines ----------------------------------------------------------------

-- An error is written and counted: piped input exits non-zero after one
-- (see `failed`).
local function fail(self, text)
  self.failed = (self.failed or 0) + 1
  return self.write(text)
end

-- Whether a compile error means "the chunk is not finished yet" (lua.c's
-- test: the parser stopped at the end of the input).
local function incomplete(err)
  return type(err) == "string" and err:sub(-5) == "<eof>"
end

local function eval_args(self, src)
  if src == "" then return true, nil end
  local chunk, err = load("return " .. src, "=args", "t", self.env)
  if not chunk then return false, err end
  return pcall(chunk)
end

--- Starts service.method with `go`; prints "[n] started" now and the
-- result when it arrives.
function Repl:go(service, method, args)
  self.jobs = self.jobs + 1
  local n = self.jobs
  local call = self:client(service):go(method, args)
  self:_learn(service, method)
  self.write(string.format("[%d] started", n))
  self.pending = (self.pending or 0) + 1
  moonrpc.spawn(function()
    local reply, err = call:wait()
    self.pending = self.pending - 1
    local head = string.format("[%d] %s.%s -> ", n, service, method)
    if err then fail(self, head .. M.error_text(err))
    else self.write(head .. M.render(reply)) end
  end)
end

local function print_values(self, t)
  if t.n == 0 then return end
  local parts = {}
  for i = 1, t.n do parts[i] = M.render(t[i]) end
  self.write(table.concat(parts, "\t"))
end

--- Runs one line (or the lines of a chunk so far, joined by newlines) and
-- writes what it gives. Returns "more" when the chunk is unfinished
-- (nothing is run or written: read another line and call again with both),
-- "quit" for quit or exit, else nothing. Never raises.
function Repl:eval(line)
  if line:match("^%s*$") then return end
  local word = line:match("^%s*(%a+)%s*$") or line:match("^%s*(%a+)%(%)%s*$")
  if (word == "quit" or word == "exit") and rawget(self.env, word) == nil then return "quit" end
  if word == "help" and line:match("^%s*help%s*$") and rawget(self.env, "help") == nil then
    return self.write(M.HELP)
  end
  local service, method, argsrc, go = M.parse_call(line, function(name)
    return rawget(self.env, name) ~= nil or _G[name] ~= nil
  end)
  if service then
    local ok, args = eval_args(self, argsrc)
    if not ok and incomplete(args) then return "more" end
    if not ok then return fail(self, M.error_text(args)) end
    if go then return self:go(service, method, args) end
    local ok2, reply, err = pcall(self.call, self, service, method, args)
    if not ok2 then return fail(self, M.error_text(reply)) end
    if err then return fail(self, M.error_text(err)) end
    return self.write(M.render(reply))
  end
  if line:match("^%s*go%s") then
    return fail(self, "error: go needs a call: go Service.Method{...}")
  end
  local src = line:gsub("^%s*=", "return ")
  local chunk = load("return " .. src, "=stdin", "t", self.env)
  local err
  if not chunk then chunk, err = load(src, "=stdin", "t", self.env) end
  if not chunk and incomplete(err) then return "more" end
  if not chunk then return fail(self, M.error_text(err)) end
  local r = table.pack(xpcall(chunk, function(e)
    if type(e) == "string" then return e end
    return e
  end))
  if not r[1] then return fail(self, M.error_text(r[2])) end
  print_values(self, table.pack(table.unpack(r, 2, r.n)))
end

--- Ctrl-C while a line runs: the call in progress ends with ECANCELED;
-- Lua code waiting in the loop gets an "interrupted" error at its next
-- step outside a callback.
function Repl:interrupt(main)
  if self.current then
    self.current:discard()
    return
  end
  debug.sethook(main, function()
    if core.in_callback() then return end
    debug.sethook(main)
    error("interrupted", 0)
  end, "", 1)
  core.stop()
end

-- ---- the terminal ------------------------------------------------------------------------

--- Reads lines and evaluates them until end of input. With `edit` (a
-- terminal), through libedit with completion and history; `history`
-- names the history file.
function Repl:run(history)
  local tty = core.edit_isatty()
  local PROMPT, MORE = "moonrpc> ", "     ..> "
  local prompt = PROMPT
  local chunk -- the lines of an unfinished chunk so far, or nil
  local main = coroutine.running()
  local state = "idle" -- "prompt" while reading a line, "busy" while running one
  if tty then
    if history then core.edit_history_load(history) end
    core.edit_completer(function(text, line, start, finish)
      return self:complete(text, line, start, finish)
    end)
    self.write = function(text) core.edit_print(text) end
  end
  local sig = moonrpc.signal("SIGINT", function()
    if state == "prompt" then
      chunk, prompt = nil, PROMPT -- the unfinished chunk goes too
      core.edit_clear(PROMPT)
    elseif state == "busy" then
      if tty then io.write("\n"); io.stdout:flush() end -- after the terminal's ^C
      self:interrupt(main)
    end
  end)
  -- A line from the terminal, read on the loop (go replies print meanwhile);
  -- nil at Ctrl-D. Without a terminal, a line from stdin.
  local function read_line()
    if not tty then return io.read("l") end
    local got, line = false, nil
    local id = sched.listen(function(l) got, line = true, l end)
    core.edit_start(prompt, id)
    state = "prompt"
    local ok, err = pcall(sched.block_until, function() return got end)
    state = "idle"
    sched.unlisten(id)
    if not ok then core.edit_stop(); error(err, 0) end
    return line
  end
  local quit
  while true do
    local line = read_line()
    if line == nil then break end
    if tty and line:match("%S") then
      core.edit_history_add(line)
      if history then core.edit_history_save(history) end
    end
    if chunk then line = chunk .. "\n" .. line end
    state = "busy"
    -- Ctrl-C stops Lua that runs outside the loop too: the guard's hook
    -- may fire anywhere from arming to disarming, so all of it is
    -- protected, and the hook is cleared before leaving.
    local ok, err = pcall(function()
      core.interrupt_guard(main)
      local ok2, err2 = pcall(self.eval, self, line)
      core.interrupt_guard()
      debug.sethook(main)
      if not ok2 then error(err2, 0) end
      return err2
    end)
    core.interrupt_guard()
    debug.sethook(main)
    state = "idle"
    chunk, prompt = nil, PROMPT
    if not ok then fail(self, M.error_text(err))
    elseif err == "more" then chunk, prompt = line, MORE
    elseif err == "quit" then quit = true; break end
  end
  if chunk then fail(self, "error: the input ended inside an unfinished chunk") end
  if tty and not quit then io.write("\n") end
  -- Without a terminal, input may end before the replies of `go` calls.
  if not tty and (self.pending or 0) > 0 then
    pcall(sched.block_until, function() return self.pending == 0 end, self.timeout + 1)
  end
  if sig then sig.stop() end
  self:close()
end

function Repl:close()
  for _, xc in pairs(self.clients) do xc:close() end
  self.clients = {}
  if self.reg and type(self.opts.registry) == "string" then self.reg:close() end
end

return M
