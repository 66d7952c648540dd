-- spec/cli_spec.lua: `moonrpc call`, `list` and `describe` run as a user
-- runs them, against live servers (the Lua Arith service, a service of
-- binary replies, the embedded registry): their output, their ways of
-- taking arguments (ARGS, -d DATA|@FILE|@-) and their documented exit
-- codes (0 success, 1 remote error, 2 usage, 3 transport or timeout).

local S = require "support"

local MOONRPC = S.spec_dir .. "/../scripts/moonrpc"
local ARITH = S.spec_dir .. "/../examples/lua/arith_service.lua"

local BYTES = S.spec_dir .. "/servers/bytes_service.lua"

-- Runs `moonrpc ARGS...` (with `stdin`, a string, as its input when
-- given); returns stdout, stderr, exit code.
local function run_in(stdin, ...)
  local parts = { "lua5.4", S.shell_quote(MOONRPC) }
  for i = 1, select("#", ...) do parts[#parts + 1] = S.shell_quote((select(i, ...))) end
  local err, input = os.tmpname(), nil
  if stdin then
    input = os.tmpname()
    local f = assert(io.open(input, "wb"))
    f:write(stdin)
    f:close()
    parts[#parts + 1] = "<" .. S.shell_quote(input)
  end
  local p = assert(io.popen(table.concat(parts, " ") .. " 2>" .. err .. "; echo \"rc=$?\""))
  local out = p:read("a")
  p:close()
  local stderr = S.read_all(err) or ""
  os.remove(err)
  if input then os.remove(input) end
  local body, rc = out:match("^(.-)rc=(%d+)\n$")
  return body, stderr, tonumber(rc)
end

local function run(...) return run_in(nil, ...) end

describe("moonrpc call and list", function()
  local reg, arith, url, bytes
  setup(function()
    reg = S.spawn(MOONRPC, "registry", "--listen", "tcp@127.0.0.1:0")
    url = "moonrpc://" .. reg.host .. ":" .. reg.port
    arith = S.spawn(MOONRPC, "serve", ARITH, "--listen", "tcp@127.0.0.1:0", "--registry", url)
    bytes = S.spawn(MOONRPC, "serve", BYTES, "--listen", "tcp@127.0.0.1:0")
  end)
  teardown(function()
    bytes.stop()
    arith.stop()
    reg.stop()
  end)

  it("calls with a Lua literal or JSON and prints the reply", function()
    local out, _, rc = run("call", arith.addr, "Arith.Mul", "{A = 7, B = 8}")
    assert.are.equal(0, rc)
    assert.are.equal("{\n  C = 56\n}\n", out)
    out, _, rc = run("call", arith.addr, "Arith.Mul", '{"A": 6, "B": 7}', "--json")
    assert.are.equal(0, rc)
    assert.are.equal('{"C":42}\n', out)
  end)

  it("takes the arguments with -d DATA, -d @FILE and -d @- (stdin), as grpcurl does", function()
    local out, err, rc = run("call", arith.addr, "Arith.Mul", "-d", "{A = 3, B = 4}")
    assert.are.equal(0, rc, err)
    assert.are.equal("{\n  C = 12\n}\n", out)
    local file = os.tmpname()
    local f = assert(io.open(file, "w"))
    f:write('{"A": 5, "B": 6}\n')
    f:close()
    out, err, rc = run("call", arith.addr, "Arith.Mul", "-d", "@" .. file, "--json")
    assert.are.equal(0, rc, err)
    assert.are.equal('{"C":30}\n', out)
    -- --json is the output format only: a Lua literal in, JSON out
    out, err, rc = run_in("{A = 2, B = 9}\n", "call", arith.addr, "Arith.Mul", "-d", "@-", "--json")
    assert.are.equal(0, rc, err)
    assert.are.equal('{"C":18}\n', out)
    out, err, rc = run_in('{"A": 2, "B": 8}', "call", arith.addr, "Arith.Mul", "--data", "@")
    assert.are.equal(0, rc, err)
    assert.are.equal("{\n  C = 16\n}\n", out)
    _, err, rc = run("call", arith.addr, "Arith.Mul", "-d", "@" .. file .. ".missing")
    os.remove(file)
    assert.are.equal(2, rc)
    assert.matches("No such file", err, 1, true)
    _, err, rc = run("call", arith.addr, "Arith.Mul", "{}", "-d", "{}")
    assert.are.equal(2, rc)
    assert.matches("not both", err, 1, true)
    _, err, rc = run("call", arith.addr, "Arith.Mul", "-x", "{}")
    assert.are.equal(2, rc)
    assert.matches("unknown option -x", err, 1, true)
  end)

  it("prints binary strings escaped, and as base64 under --json (valid JSON)", function()
    local out, err, rc = run("call", bytes.addr, "Bytes.Blob")
    assert.are.equal(0, rc, err)
    assert.are.equal('{\n  png = "\\x89PNG\\r\\n\\x1a\\n\\x00",\n  tab = "a\\tb",\n'
                     .. '  text = "héllo\\n"\n}\n', out)
    assert.is_nil(out:find("[\128-\255]PNG")) -- no raw byte reaches the terminal
    -- the Lua literal reads back as the same bytes
    local back = load("return " .. out)()
    assert.are.same({ png = "\x89PNG\r\n\x1a\n\0", tab = "a\tb", text = "héllo\n" }, back)
    out, err, rc = run("call", bytes.addr, "Bytes.Blob", "--json")
    assert.are.equal(0, rc, err)
    local moonrpc = require "moonrpc"
    local v = assert(moonrpc.decode(out, "json"))
    assert.are.equal("iVBORw0KGgoA", v.png) -- base64 of the 9 bytes, as Go writes []byte
    assert.are.equal("\x89PNG\r\n\x1a\n\0", S.unbase64(v.png))
    assert.are.equal("héllo\n", v.text)
    assert.are.equal("a\tb", v.tab)
    assert.truthy(utf8.len(out), "the JSON output is UTF-8")
    assert.matches('"a\\tb"', out, 1, true) -- control bytes JSON-escaped
  end)

  it("describes a service (methods, metadata) or one method, with call's exit codes", function()
    local out, err, rc = run("describe", bytes.addr, "Bytes")
    assert.are.equal(0, rc, err)
    assert.are.equal("Bytes\n  metadata: group=bytes, weight=2\n  methods (2):\n"
                     .. "    Bytes.Blob\n    Bytes.Echo\n", out)
    out, err, rc = run("describe", arith.addr, "Arith.Mul")
    assert.are.equal(0, rc, err)
    assert.matches("^Arith%.Mul\n  a method of Arith %(metadata: %(none%)%)\n", out)
    _, err, rc = run("describe", arith.addr, "Arith.Nope")
    assert.are.equal(1, rc)
    assert.matches("Arith has no method Nope (its methods: Div, Mul, SlowMul)", err, 1, true)
    _, err, rc = run("describe", arith.addr, "Nope")
    assert.are.equal(1, rc)
    assert.matches("has no service Nope (it serves: Arith)", err, 1, true)
    _, err, rc = run("describe", S.dead_port(), "Arith")
    assert.are.equal(3, rc)
    assert.matches("ECONNREFUSED", err, 1, true)
    for _, bad in ipairs { { arith.addr }, { arith.addr, "A.b.c" }, { arith.addr, "Arith", "x" } } do
      _, err, rc = run("describe", table.unpack(bad))
      assert.are.equal(2, rc, table.concat(bad, " ") .. ": " .. err)
    end
  end)

  it("finds the service through a registry, sends metadata, prints the reply's", function()
    local out, err, rc = run("call", "--registry", url, "Arith.Mul", "{A = 2, B = 3}",
                             "--meta", "trace=abc", "--meta", "user=7")
    assert.are.equal(0, rc, err)
    assert.matches("C = 6", out, 1, true)
    assert.matches('served_by = "' .. arith.addr .. '"', err, 1, true)
  end)

  it("exits 1 on a remote error, 3 on transport failure or timeout, 2 on misuse", function()
    local _, err, rc = run("call", arith.addr, "Arith.Div", "{A = 1, B = 0}")
    assert.are.equal(1, rc)
    assert.matches("EREMOTE: divide by zero", err, 1, true)
    _, err, rc = run("call", S.dead_port(), "Arith.Mul", "{}")
    assert.are.equal(3, rc)
    assert.matches("ECONNREFUSED", err, 1, true)
    _, err, rc = run("call", arith.addr, "Arith.SlowMul", "{A = 1, B = 1, ms = 2000}", "--timeout", "0.2")
    assert.are.equal(3, rc)
    assert.matches("ETIMEDOUT", err, 1, true)
    _, err, rc = run("call", "--registry", url, "Nope.X")
    assert.are.equal(3, rc)
    assert.matches("no instance of Nope", err, 1, true)
    for _, bad in ipairs {
      { "call", arith.addr },
      { "call", arith.addr, "NoDot" },
      { "call", arith.addr, "Arith.Mul", "{A = ", },
      { "call", arith.addr, "Arith.Mul", "{}", "--meta", "novalue" },
      { "call", arith.addr, "Arith.Mul", "--bogus" },
      { "gateway", "--registry", url, "--http-idle", "soon" },
      { "gateway", "--registry", url, "--timeout", "-1" },
      { "gateway", "--registry", url, "--selector", "Closest" },
    } do
      _, err, rc = run(table.unpack(bad))
      assert.are.equal(2, rc, table.concat(bad, " ") .. ": " .. err)
    end
  end)

  it("prints help with examples for every command", function()
    for _, cmd in ipairs { "serve", "call", "list", "describe", "registry", "registrar", "gateway", "run", "echo", "repl" } do
      local out, err, rc = run(cmd, "--help")
      assert.are.equal(0, rc, cmd .. ": " .. err)
      assert.matches("usage: moonrpc " .. cmd, out, 1, true)
      assert.matches("example", out, 1, true)
    end
    local out, _, rc = run("--help")
    assert.are.equal(0, rc)
    assert.matches("moonrpc COMMAND --help", out, 1, true)
    assert.matches("describe ADDR Service[.Method]", out, 1, true)
    out = run("call", "--help")
    assert.matches("--json           the output format only", out, 1, true)
    _, _, rc = run("nosuchcommand")
    assert.are.equal(2, rc)
  end)

  it("lists a server's services and methods through reflection", function()
    local out, err, rc = run("list", arith.addr)
    assert.are.equal(0, rc, err)
    assert.are.equal("Arith\n  Arith.Div\n  Arith.Mul\n  Arith.SlowMul\n", out)
  end)

  it("lists a registry's services and instances with their metadata", function()
    local out, err, rc = run("list", "--registry", url)
    assert.are.equal(0, rc, err)
    assert.are.equal("Arith\n  " .. arith.addr .. "\n", out)
    out, err, rc = run("list", "--registry", url, "Arith", "Nope")
    assert.are.equal(0, rc, err)
    assert.are.equal("Arith\n  " .. arith.addr .. "\nNope\n  (no instance)\n", out)
    _, err, rc = run("list", "--registry", "etcd://127.0.0.1:1/x")
    assert.are.equal(3, rc) -- nothing listens there
    assert.matches("ECONNREFUSED", err, 1, true)
  end)

  it("serve stops gracefully on SIGTERM: unregisters, exits 0", function()
    local log = os.tmpname()
    local script = ([[
      lua5.4 %s serve %s --listen tcp@127.0.0.1:0 --registry %s > %s 2>&1 &
      p=$!
      for i in $(seq 100); do grep -q "listening on" %s && break; sleep 0.05; done
      lua5.4 %s list --registry %s Arith | grep -c tcp@
      kill -TERM $p; wait $p; echo "rc=$?"
      lua5.4 %s list --registry %s Arith | grep -c tcp@]]):format(
      S.shell_quote(MOONRPC), S.shell_quote(ARITH), url, log, log,
      S.shell_quote(MOONRPC), url, S.shell_quote(MOONRPC), url)
    local p = assert(io.popen("sh -c " .. S.shell_quote(script)))
    local out = p:read("a")
    p:close()
    local output = S.read_all(log) or ""
    os.remove(log)
    -- the shared Arith plus the new one, then only the shared one
    assert.are.equal("2\nrc=0\n1\n", out, output)
    assert.matches("SIGTERM: shutting down", output, 1, true)
  end)

  it("run executes a script with moonrpc on its paths and its arguments", function()
    local f = os.tmpname()
    local h = assert(io.open(f, "w"))
    h:write([[
      local moonrpc = require "moonrpc"
      local addr, a, b = ...
      local xc = moonrpc.xclient("Arith", moonrpc.Failfast, moonrpc.RandomSelect, moonrpc.peer2peer(addr))
      local r = assert(xc:call("Mul", { A = tonumber(a), B = tonumber(b) }))
      print(arg[0] ~= nil, r.C)
      xc:close()
    ]])
    h:close()
    local out, err, rc = run("run", f, arith.addr, "6", "9")
    os.remove(f)
    assert.are.equal(0, rc, err)
    assert.are.equal("true\t54\n", out)
  end)
end)

