--- Spec for the Lua <-> wire mapping (the comment at the top of
-- lua/src/lcodec.c) exercised through a live server: values go out as call
-- arguments, are decoded by the server, encoded again as its reply and
-- decoded by the client. codec_spec.lua pins the bytes; this pins the trip.
local moonrpc = require "moonrpc"

local null = moonrpc.null

local function deep(n)
  local top = {}
  local cur = top
  for _ = 2, n do cur.n = {}; cur = cur.n end
  return top
end

describe("payloads through a live server", function()
  local s, addr, xc, calls, seen
  before_each(function()
    calls, seen = 0, {}
    s = moonrpc.server()
    s:register("P", {
      Echo = function(_, a) calls = calls + 1; seen.args = a; return a end,
      Types = function(_, a)
        calls = calls + 1
        local t = {}
        for k, v in pairs(a) do t[k] = math.type(v) or type(v) end
        return t
      end,
      Fn = function() return { f = print } end,
    })
    addr = assert(s:serve("tcp", "127.0.0.1:0"))
    xc = moonrpc.xclient("P", moonrpc.Failfast, moonrpc.RandomSelect, moonrpc.peer2peer(addr))
  end)
  after_each(function() xc:close(); s:close() end)

  local function echo(v, ser)
    local r, err = xc:call("Echo", v, { serialize = ser })
    assert.is_nil(err, tostring(err))
    return r
  end

  it("keeps integers integers, at every size, in msgpack and json", function()
    local ints = {
      zero = 0, small = 7, neg = -3, big = 100000, b53 = (1 << 53) + 1,
      neg62 = -(1 << 62), max = math.maxinteger, min = math.mininteger,
      u32 = 4294967296, n33 = -2147483649,
    }
    for _, ser in ipairs({ "msgpack", "json" }) do
      local r = echo(ints, ser)
      for k, v in pairs(ints) do
        assert.are.equal("integer", math.type(r[k]), ser .. " " .. k)
        assert.is_true(r[k] == v, ser .. " " .. k .. ": " .. tostring(r[k]) .. " ~= " .. v)
      end
      -- the server saw integers too
      local t = assert(xc:call("Types", ints, { serialize = ser }))
      for k in pairs(ints) do assert.are.equal("integer", t[k], ser .. " " .. k) end
    end
  end)

  it("round-trips floats", function()
    local floats = { a = 0.1, b = -2.25, c = 1e300, d = 5e-324, e = 3.0, f = -0.5, g = 2.0^60 }
    local r = echo(floats)
    for k, v in pairs(floats) do
      assert.are.equal("float", math.type(r[k]), k)
      assert.are.equal(v, r[k], k)
    end
    r = echo({ inf = math.huge, ninf = -math.huge, nan = 0 / 0 })
    assert.are.equal(math.huge, r.inf)
    assert.are.equal(-math.huge, r.ninf)
    assert.is_true(r.nan ~= r.nan)
    -- JSON keeps the value; a float without a fraction reads back as a number
    r = echo(floats, "json")
    for k, v in pairs(floats) do assert.are.equal(v, r[k], k) end
    assert.are.equal("float", math.type(r.a))
    -- JSON cannot carry NaN or infinity: refused before sending
    local before = calls
    local r2, err = xc:call("Echo", { x = math.huge }, { serialize = "json" })
    assert.is_nil(r2)
    assert.are.equal("EENCODE", err.code)
    assert.are.equal(before, calls)
  end)

  it("round-trips nested tables, arrays and maps", function()
    local v = {
      name = "moon", ok = true, no = false,
      list = { 1, "two", 3.5, { x = { 1, 2, { deep = "yes" } } } },
      map = { a = { b = { c = { d = "e" } } } },
    }
    for _, ser in ipairs({ "msgpack", "json" }) do
      local r = echo(v, ser)
      assert.are.same(v, r, ser)
      assert.are.equal(4, #r.list)
      assert.are.equal(true, r.ok)
      assert.are.equal(false, r.no)
    end
    -- a table with holes is a map: msgpack keeps integer keys, JSON strings
    local holes = { [1] = "a", [3] = "c" }
    local r = echo(holes)
    assert.are.same(holes, r)
    r = echo(holes, "json")
    assert.are.same({ ["1"] = "a", ["3"] = "c" }, r)
    -- mixed keys make a map
    r = echo({ 10, 20, k = "v" })
    assert.are.same({ 10, 20, k = "v" }, r)
    -- the top-level value need not be a table
    assert.are.equal("str", echo("str"))
    assert.are.equal(12, echo(12))
    assert.are.equal(true, echo(true))
  end)

  it("keeps moonrpc.null in arrays and maps", function()
    for _, ser in ipairs({ "msgpack", "json" }) do
      local r = echo({ 1, null, 3, null }, ser)
      assert.are.equal(4, #r, ser)
      assert.are.equal(1, r[1])
      assert.are.equal(null, r[2])
      assert.are.equal(3, r[3])
      assert.are.equal(null, r[4])
      r = echo({ a = null, b = 1 }, ser)
      assert.are.equal(null, r.a)
      assert.are.equal(1, r.b)
      assert.are.equal(null, seen.args.a) -- the handler saw it as well
    end
    assert.is_nil(echo(null))
  end)

  it("carries binary-safe strings in msgpack and raw", function()
    local bytes = "a\0b\255\254\0\r\n" .. string.char(0x80, 0xc1, 0xff)
    local all = {}
    for i = 0, 255 do all[#all + 1] = string.char(i) end
    local every = table.concat(all)
    assert.are.equal(bytes, echo({ s = bytes }).s)
    assert.are.equal(every, echo({ s = every }).s)
    assert.are.equal(every, echo(every, "raw"))
    assert.are.equal(bytes, echo(bytes, "raw"))
    assert.are.equal("", echo("", "raw"))
    -- moonrpc.bin goes as msgpack bin and arrives as a plain string
    local r = echo({ b = moonrpc.bin(every) })
    assert.are.equal("string", type(r.b))
    assert.are.equal(every, r.b)
    assert.are.equal("string", type(seen.args.b))
    assert.are.equal(every, echo(moonrpc.bin(every), "raw"))
    -- JSON writes bin as base64, as Go does for a []byte
    r = echo({ b = moonrpc.bin("\0\255") }, "json")
    assert.are.equal("AP8=", r.b)
  end)

  it("sends an empty table as an empty map", function()
    for _, ser in ipairs({ "msgpack", "json" }) do
      local r = echo({}, ser)
      assert.are.equal("table", type(r))
      assert.is_nil(next(r))
      r = echo({ e = {}, l = { {} } }, ser)
      assert.are.same({ e = {}, l = { {} } }, r)
    end
  end)

  it("answers with an error when the reply cannot be encoded", function()
    local r, err = xc:call("Fn", {})
    assert.is_nil(r)
    assert.are.equal("EREMOTE", err.code)
    assert.matches("encode", err.message)
    assert.matches("function", err.message)
    assert.are.equal(5, echo(5)) -- and goes on serving
  end)

  it("refuses arguments it cannot encode without sending them", function()
    local cycle = { name = "loop" }
    cycle.self = cycle
    local cases = {
      { { f = print }, "EENCODE", "function" },
      { { x = { y = { coroutine.create(print) } } }, "EENCODE", "x%.y" },
      { { u = io.stdout }, "EENCODE", "userdata" },
      { cycle, "EDEPTH", nil },
      { deep(100), "EDEPTH", nil },
    }
    for i, c in ipairs(cases) do
      for _, ser in ipairs({ "msgpack", "json" }) do
        local r, err = xc:call("Echo", c[1], { serialize = ser })
        assert.is_nil(r)
        assert.is_true(moonrpc.is_error(err), "case " .. i)
        assert.are.equal(c[2], err.code, "case " .. i .. " " .. ser)
        if c[3] then assert.matches(c[3], err.message) end
      end
    end
    local r, err = xc:call("Echo", 42, { serialize = "raw" })
    assert.is_nil(r)
    assert.are.equal("EENCODE", err.code)
    -- oneshot refuses the same way
    r, err = xc:oneshot("Echo", { f = print })
    assert.is_nil(r)
    assert.are.equal("EENCODE", err.code)
    assert.are.equal(0, calls) -- nothing reached the server
    assert.are.same({ ok = 1 }, echo({ ok = 1 })) -- the connection still works
    assert.are.equal(1, calls)
  end)
end)

describe("nesting limits through a live server", function()
  it("applies the xclient's own max_depth to what it sends", function()
    local a = moonrpc.server()
    local calls = 0
    a:register("P", { Echo = function(_, v) calls = calls + 1; return v end })
    local addr = assert(a:serve("tcp", "127.0.0.1:0"))
    local xc = moonrpc.xclient("P", moonrpc.Failfast, moonrpc.RandomSelect,
                               moonrpc.peer2peer(addr), { max_depth = 4 })
    local r, err = xc:call("Echo", deep(6))
    assert.is_nil(r, "opts.max_depth = 4 was ignored: a 6-deep table was sent")
    assert.are.equal("EDEPTH", err and err.code)
    assert.are.equal(0, calls)
    xc:close(); a:close()
  end)

  it("answers with an error when the arguments nest past the server's max_depth", function()
    local calls = 0
    local s = moonrpc.server({ max_depth = 8 })
    s:register("P", { Echo = function(_, a) calls = calls + 1; return a end })
    local addr = assert(s:serve("tcp", "127.0.0.1:0"))
    local xc = moonrpc.xclient("P", moonrpc.Failfast, moonrpc.RandomSelect, moonrpc.peer2peer(addr))
    local ok = assert(xc:call("Echo", deep(5)))
    assert.are.same(deep(5), ok)
    assert.are.equal(1, calls)
    -- the client's own limit is the default (64): the 20-deep table is sent
    -- and the server refuses it
    local r, err = xc:call("Echo", deep(20))
    assert.is_nil(r)
    assert.is_true(moonrpc.is_error(err))
    assert.are.equal("EREMOTE", err.code, "expected the server's error reply, got " .. tostring(err))
    assert.matches("depth", err.message)
    assert.are.equal(1, calls)
    assert.are.same(deep(3), assert(xc:call("Echo", deep(3))))
    xc:close(); s:close()
  end)

  it("keeps one server's max_depth to that server", function()
    local a = moonrpc.server()
    a:register("P", { Echo = function(_, v) return v end })
    local addr = assert(a:serve("tcp", "127.0.0.1:0"))
    local xc = moonrpc.xclient("P", moonrpc.Failfast, moonrpc.RandomSelect, moonrpc.peer2peer(addr))
    assert.are.same(deep(20), assert(xc:call("Echo", deep(20))))
    local b = moonrpc.server({ max_depth = 8 }) -- another server, same Lua state
    local r, err = xc:call("Echo", deep(20))
    assert.is_nil(err, "creating server b changed the limit for server a and the client: " .. tostring(err))
    assert.are.same(deep(20), r)
    b:close(); xc:close(); a:close()
  end)
end)
