-- spec/repl_spec.lua: `moonrpc repl` as a user meets it, through a real
-- pseudo-terminal (spec/tools/pty_drive.c forks it under forkpty and plays a
-- script of expect/send steps): a call and its printed reply, Tab
-- completion, history, `go`, an error with its code, Ctrl-C during a slow
-- call and at the prompt, Ctrl-D. The Arith service runs as a child
-- process (`moonrpc serve examples/lua/arith_service.lua`). Also the
-- renderer and the line parser, without a terminal.

local S = require "support"
local repl = require "moonrpc.repl"
local moonrpc = require "moonrpc"

local ROOT = S.spec_dir .. "/.."
local MOONRPC = ROOT .. "/scripts/moonrpc"
local BUILD = os.getenv("MOONRPC_BUILD") or (ROOT .. "/build")
local DRIVER = BUILD .. "/pty_drive"

local function exists(p)
  local f = io.open(p)
  if f then f:close() end
  return f ~= nil
end

-- A build directory for the REPL child whose lib/ is the directory the
-- spec's own moonrpc.core comes from (so the _asan run drives the
-- sanitized module too).
local function child_build(tmp)
  local cpath = os.getenv("LUA_CPATH") or ""
  local lib = cpath:match("^([^;]-)/%?%.so") or (BUILD .. "/lib")
  os.execute("ln -sfn " .. S.shell_quote(lib) .. " " .. S.shell_quote(tmp .. "/lib"))
  return tmp
end

describe("moonrpc repl", function()
  if not exists(DRIVER) then
    it("needs the pty driver", function() pending("no " .. DRIVER .. " (build the pty_drive target)") end)
    return
  end

  local srv, tmp

  setup(function()
    srv = S.spawn(MOONRPC, "serve", ROOT .. "/examples/lua/arith_service.lua", "--listen", "tcp@127.0.0.1:0")
    tmp = os.tmpname()
    os.remove(tmp)
    assert(os.execute("mkdir -p " .. S.shell_quote(tmp)))
    child_build(tmp)
  end)

  teardown(function()
    if srv then srv.stop() end
    if tmp then os.execute("rm -rf " .. S.shell_quote(tmp)) end
  end)

  -- Runs the REPL under the driver with `steps` (a list of script lines;
  -- steps.addr: the target, default the Arith server); returns whether
  -- every step passed, and the driver's output (raw: escapes and all).
  local function drive(steps, ...)
    local script = tmp .. "/script"
    local f = assert(io.open(script, "w"))
    f:write(table.concat(steps, "\n"), "\n")
    f:close()
    local args = { ... }
    for i, a in ipairs(args) do args[i] = S.shell_quote(a) end
    local cmd = "env TERM=xterm HOME=" .. S.shell_quote(tmp) .. " MOONRPC_BUILD=" .. S.shell_quote(tmp)
      .. " timeout 60 " .. S.shell_quote(DRIVER) .. " " .. S.shell_quote(script)
      .. " lua5.4 " .. S.shell_quote(MOONRPC) .. " repl " .. S.shell_quote(steps.addr or srv.addr)
      .. " " .. table.concat(args, " ") .. " 2>&1"
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    local ok = p:close()
    return ok == true, out
  end

  local PROMPT = "expect moonrpc> "

  it("calls Service.Method and pretty-prints the reply; Ctrl-D exits 0", function()
    local ok, out = drive {
      PROMPT,
      "send Arith.Mul{A = 7, B = 8}\\r",
      "expect { C = 56 }",
      PROMPT,
      "send Arith.Mul({A = 2, B = 21})\\r",
      "expect { C = 42 }",
      PROMPT,
      "send = { list = { 1, 2 }, nested = { deep = { x = 1 } }, raw = '\\\\1\\\\2\\\\255' }\\r",
      "expect {\\n  list = { 1, 2 },\\n  nested = {\\n    deep = { x = 1 }\\n  },\\n  raw = <hex 0102ff (3 bytes)>\\n}",
      PROMPT,
      "send \\x04",
      "exit 0",
    }
    assert(ok, out)
  end)

  it("completes service and method names with Tab", function()
    local ok, out = drive {
      PROMPT,
      "send Ari\\t",
      "expect Arith.",
      "send Slo\\t",
      "expect SlowMul",
      "send {A = 3, B = 3, ms = 1}\\r",
      "expect { C = 9 }",
      PROMPT,
      "send Arith.D\\t{A = 9, B = 3}\\r",
      "expect { C = 3 }",
      PROMPT,
      "send \\x04",
      "exit 0",
    }
    assert(ok, out)
  end)

  it("recalls the previous line with the up arrow and writes the history file", function()
    local hist = tmp .. "/hist"
    os.remove(hist)
    local ok, out = drive({
      PROMPT,
      "send Arith.Mul{A = 5, B = 5}\\r",
      "expect { C = 25 }",
      PROMPT,
      "send \\e[A",
      "expect Arith.Mul{A = 5, B = 5}",
      "send \\r",
      "expect { C = 25 }",
      PROMPT,
      "send \\x04",
      "exit 0",
    }, "--history", hist)
    assert(ok, out)
    local text = S.read_all(hist) or ""
    assert.truthy(text:find("Arith.Mul{A = 5, B = 5}", 1, true), text)
    -- A new session reads it back.
    ok, out = drive({
      PROMPT,
      "send \\e[A\\r",
      "expect { C = 25 }",
      PROMPT,
      "send \\x04",
      "exit 0",
    }, "--history", hist)
    assert(ok, out)
  end)

  it("go prints [n] started, then the reply when it arrives, above the prompt", function()
    local ok, out = drive {
      PROMPT,
      "send go Arith.SlowMul{A = 2, B = 5, ms = 300}\\r",
      "expect [1] started",
      PROMPT,
      "send Arith.Mu",
      "expect [1] Arith.SlowMul -> { C = 10 }",
      -- the prompt and the partial line are drawn again below it
      "expect moonrpc> Arith.Mu",
      "send l{A = 1, B = 1}\\r",
      "expect { C = 1 }",
      PROMPT,
      "send \\x04",
      "exit 0",
    }
    assert(ok, out)
  end)

  it("prints errors with their code", function()
    local ok, out = drive {
      PROMPT,
      "send Arith.Div{A = 1, B = 0}\\r",
      "expect error EREMOTE: divide by zero",
      PROMPT,
      "send Arith.Nope{}\\r",
      "expect error EREMOTE: rpcx: can't find method Nope",
      PROMPT,
      "send error('boom', 0)\\r",
      "expect error: boom",
      PROMPT,
      "send \\x04",
      "exit 0",
    }
    assert(ok, out)
  end)

  -- Ctrl-C 300 ms into a line: "error: interrupted" within a second.
  local interrupt = { "sleep 300", "send \\x03", "timeout 1", "expect error: interrupted", PROMPT }

  it("Ctrl-C cancels a slow call or stops a busy loop within a second and the REPL goes on; at the prompt it clears the line", function()
    local ok, out = drive {
      PROMPT,
      "send Arith.SlowMul{A = 2, B = 2, ms = 5000}\\r",
      "sleep 300",
      "send \\x03",
      "timeout 1",
      "expect error ECANCELED: call canceled",
      PROMPT,
      "timeout 5",
      "send Arith.Mul{A = 4, B = 4}\\r",
      "expect { C = 16 }",
      PROMPT,
      -- Lua waiting in the loop, then Lua keeping the CPU busy
      "send moonrpc.sleep(10)\\r",
      interrupt[1], interrupt[2], interrupt[3], interrupt[4], interrupt[5],
      "send n = 0; local function spin() while true do n = n + 1 end end; spin()\\r",
      interrupt[1], interrupt[2], interrupt[3], interrupt[4], interrupt[5],
      "timeout 5",
      "send =n > 0\\r",
      "expect true",
      PROMPT,
      "timeout 5",
      "send junk",
      "expect junk",
      "send \\x03",
      "expect ^C",
      PROMPT,
      "send =1 + 2\\r",
      "expect 3",
      PROMPT,
      "send \\x04",
      "exit 0",
    }
    assert(ok, out)
  end)
end)

describe("moonrpc repl, the first hour", function()
  if not exists(DRIVER) then
    it("needs the pty driver", function() pending("no " .. DRIVER) end)
    return
  end

  local srv, tmp
  setup(function()
    srv = S.spawn(MOONRPC, "serve", ROOT .. "/examples/lua/arith_service.lua", "--listen", "tcp@127.0.0.1:0")
    tmp = os.tmpname()
    os.remove(tmp)
    assert(os.execute("mkdir -p " .. S.shell_quote(tmp)))
    child_build(tmp)
  end)
  teardown(function()
    if srv then srv.stop() end
    if tmp then os.execute("rm -rf " .. S.shell_quote(tmp)) end
  end)

  local function drive(steps)
    local script = tmp .. "/script"
    local f = assert(io.open(script, "w"))
    f:write(table.concat(steps, "\n"), "\n")
    f:close()
    local cmd = "env TERM=xterm HOME=" .. S.shell_quote(tmp) .. " MOONRPC_BUILD=" .. S.shell_quote(tmp)
      .. " timeout 60 " .. S.shell_quote(DRIVER) .. " " .. S.shell_quote(script)
      .. " lua5.4 " .. S.shell_quote(MOONRPC) .. " repl " .. S.shell_quote(steps.addr or srv.addr) .. " 2>&1"
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    local ok = p:close()
    return ok == true, out
  end

  -- `moonrpc repl ADDR` without a terminal: stdin is `input`; returns
  -- stdout, stderr and the exit status.
  local function piped(input, addr)
    local inp, err = tmp .. "/in", tmp .. "/err"
    local f = assert(io.open(inp, "w"))
    f:write(input)
    f:close()
    local p = assert(io.popen("env MOONRPC_BUILD=" .. S.shell_quote(tmp) .. " lua5.4 " .. S.shell_quote(MOONRPC)
      .. " repl " .. S.shell_quote(addr or srv.addr) .. " <" .. S.shell_quote(inp) .. " 2>" .. S.shell_quote(err)
      .. "; echo \"rc=$?\""))
    local out = p:read("a")
    p:close()
    local body, rc = out:match("^(.-)rc=(%d+)\n$")
    return body, S.read_all(err) or "", tonumber(rc)
  end

  local PROMPT = "expect moonrpc> "

  it("shows a banner with the address and whether it answered; help; quit and exit leave", function()
    local ok, out = drive {
      "expect moonrpc " .. moonrpc._VERSION .. " on " .. srv.addr .. ": answered, 1 service: Arith",
      "expect Type help for help",
      PROMPT,
      "send help\\r",
      "expect go Service.Method{...}",
      PROMPT,
      "send quit\\r",
      "exit 0",
    }
    assert(ok, out)
    ok, out = drive { PROMPT, "send exit\\r", "exit 0" }
    assert(ok, out)
  end)

  it("warns when the target does not answer", function()
    local dead = S.dead_port()
    local ok, out = drive {
      addr = dead,
      "expect warning: " .. dead .. " did not answer (ECONNREFUSED); calls fail until it does",
      PROMPT,
      "send \\x04",
      "exit 0",
    }
    assert(ok, out)
  end)

  it("continues an unfinished chunk under the ..> prompt; Ctrl-C drops it", function()
    local ok, out = drive {
      PROMPT,
      "send function triple(x)\\r",
      "expect ..> ",
      "sleep 100",
      "send return x * 3\\r",
      "expect ..> ",
      "sleep 100",
      "send end\\r",
      PROMPT,
      "sleep 100",
      "send =triple(5)\\r",
      "expect 15",
      PROMPT,
      "sleep 100",
      "send Arith.Mul{A = 6,\\r",
      "expect ..> ",
      "sleep 100",
      "send B = 7}\\r",
      "expect { C = 42 }",
      PROMPT,
      "sleep 100",
      "send for i = 1, 2 do\\r",
      "expect ..> ",
      "sleep 100",
      "send \\x03",
      "expect ^C",
      PROMPT,
      "send =1 + 1\\r", -- a fresh chunk: the loop above is gone
      "expect 2",
      PROMPT,
      "send \\x04",
      "exit 0",
    }
    assert(ok, out)
  end)

  it("completes Lua globals and fields with Tab (moonrpc.<Tab>)", function()
    local ok, out = drive {
      PROMPT,
      "send moonrpc.sle\\t",
      "expect moonrpc.sleep",
      "send (0); answer = { deep = { value = 42 } }\\r",
      PROMPT,
      "sleep 100",
      "send =answ\\t",
      "expect =answer",
      "send .de\\t",
      "expect .deep",
      "send .va\\t",
      "expect .value",
      "send \\r",
      "expect 42",
      PROMPT,
      "send \\x04",
      "exit 0",
    }
    assert(ok, out)
  end)

  it("Ctrl-C at the prompt writes ^C after the line, not over the prompt", function()
    local ok, out = drive {
      PROMPT,
      "send junkXYZ\\e[D\\e[D\\e[D", -- the cursor in the middle of the line
      "expect junkXYZ",
      "sleep 100",
      "send \\x03",
      "expect ^C",
      PROMPT,
      "send =1 + 2\\r",
      "expect 3",
      PROMPT,
      "send \\x04",
      "exit 0",
    }
    assert(ok, out)
    -- The raw output: the cursor went to the end of the line, then ^C; a
    -- carriage return before ^C would have drawn it over "moonrpc> ".
    assert.truthy(out:find("XYZ^C", 1, true), out)
    assert.falsy(out:find("\r^C", 1, true), out)
  end)

  it("piped input exits 1 when a line failed, 0 when none did; the warning on stderr", function()
    local out, err, rc = piped("Arith.Mul{A = 2,\n B = 3}\n=1 + 1\n")
    assert.are.equal(0, rc, err)
    assert.are.equal("{ C = 6 }\n2\n", out)
    assert.are.equal("", err)
    out, err, rc = piped("Arith.Div{A = 1, B = 0}\n=1 + 1\n")
    assert.are.equal(1, rc, err)
    assert.are.equal("error EREMOTE: divide by zero\n2\n", out)
    _, _, rc = piped("error('boom')\n")
    assert.are.equal(1, rc)
    out, _, rc = piped("function f(\n")
    assert.are.equal(1, rc)
    assert.matches("unfinished chunk", out, 1, true)
    out, _, rc = piped("=1\nquit\n=2\n")
    assert.are.equal(0, rc)
    assert.are.equal("1\n", out)
    local dead = S.dead_port()
    out, err, rc = piped("Arith.Mul{A = 1, B = 1}\n", dead)
    assert.are.equal(1, rc)
    assert.matches("error ECONNREFUSED", out, 1, true)
    assert.matches("warning: " .. dead .. " did not answer", err, 1, true)
  end)
end)

describe("moonrpc.repl without a terminal", function()
  it("renders nested tables indented, binary as hex, null", function()
    assert.are.equal("{ C = 56 }", repl.render { C = 56 })
    assert.are.equal("{ 1, 2, 3 }", repl.render { 1, 2, 3 })
    assert.are.equal("{\n  a = {\n    b = { 1 }\n  }\n}", repl.render { a = { b = { 1 } } })
    assert.are.equal("<hex 00ff (2 bytes)>", repl.render "\0\255")
    assert.are.equal('"héllo"', repl.render "héllo")
    assert.are.equal("null", repl.render(moonrpc.null))
    assert.are.equal("{}", repl.render {})
  end)

  it("tells calls from plain Lua", function()
    local function g(n) return n == "string" or n == "moonrpc" end
    assert.are.same({ "Arith", "Mul", "{A = 1}", false }, { repl.parse_call("Arith.Mul{A = 1}", g) })
    assert.are.same({ "Arith", "Mul", "{A = 1}", false }, { repl.parse_call("Arith.Mul({A = 1})", g) })
    assert.are.same({ "Arith", "Mul", "{A = 1}", true }, { repl.parse_call("go Arith.Mul{A = 1}", g) })
    assert.are.same({ "Arith", "Ping", "", false }, { repl.parse_call("Arith.Ping", g) })
    assert.is_nil(repl.parse_call("string.format('%d', 1)", g))
    assert.is_nil(repl.parse_call("moonrpc.sleep(1)", g))
    assert.is_nil(repl.parse_call("x = Arith.Mul{A = 1}", g))
  end)

  it("completes services as Service. and methods as Service.Method", function()
    local r = assert(repl.new { addr = "tcp@127.0.0.1:1" })
    r:_learn("Arith", "Mul")
    r:_learn("Arith", "Div")
    r:_learn("Echo", "Echo")
    assert.are.same({ "Arith." }, r:complete("Ar", "Ar", 0, 2))
    assert.are.same({ "Arith.Div", "Arith.Mul" }, r:complete("Arith.", "Arith.", 0, 6))
    assert.are.same({ "Arith.Mul" }, r:complete("Arith.M", "Arith.M", 0, 7))
    assert.are.same({ "string.format" }, r:complete("string.form", "string.form", 0, 11))
    -- Lua globals and fields: the standard ones, moonrpc, the user's
    assert.are.same({ "moonrpc.sleep" }, r:complete("moonrpc.sl", "moonrpc.sl", 0, 10))
    r.env.answer = { deep = { value = 1 } }
    assert.are.same({ "answer" }, r:complete("answ", "answ", 0, 4))
    assert.are.same({ "answer.deep.value" }, r:complete("answer.deep.v", "answer.deep.v", 0, 13))
    assert.are.same({ "print" }, r:complete("prin", "prin", 0, 4))
    r.env.Extra = 1 -- services and globals together
    assert.are.same({ "Echo.", "Extra" }, r:complete("E", "E", 0, 1))
    assert.are.same({}, r:complete("Nope.x", "Nope.x", 0, 6)) -- never makes a client
    assert.is_nil(rawget(r.clients, "Nope"))
    r:close()
  end)

  it("degrades gracefully when the target has no Reflection service", function()
    local r = assert(repl.new { addr = "tcp@127.0.0.1:1" }) -- nothing listens there
    assert.has_no.errors(function() r:refresh() end)
    assert.are.same({}, r:complete("Ar", "Ar", 0, 2))
    r:_learn("Arith", "Mul") -- what the user called
    assert.are.same({ "Arith.Mul" }, r:complete("Arith.", "Arith.", 0, 6))
    r:close()
  end)
end)
