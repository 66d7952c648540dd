--- Spec for the payload codec of moonrpc.core (lua/src/lcodec.c, ljson.c,
-- lmsgpack.c, lvalue.c): core.encode, core.decode, core.null and core.bin
-- against the bytes Go's rpcx writes (see
-- /work/shared/rpcx-vectors/README.md), and against hostile input.
local core = require "moonrpc.core"

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x ", c:byte()) end):gsub(" $", ""))
end

local function unhex(h)
  return (h:gsub("%s", ""):gsub("%x%x", function(b) return string.char(tonumber(b, 16)) end))
end

local function mp(v) return hex(assert(core.encode(v))) end

local function fails(code, pattern, ...)
  local v, name, msg = ...
  assert.is_nil(v)
  assert.are.equal(code, name)
  assert.is_string(msg)
  if pattern then assert.matches(pattern, msg) end
end

describe("msgpack encoding", function()
  it("writes integers in Go's widths", function()
    local cases = {
      {7, "07"}, {0, "00"}, {127, "7f"}, {128, "cc 80"}, {255, "cc ff"},
      {256, "cd 01 00"}, {65535, "cd ff ff"}, {65536, "ce 00 01 00 00"},
      {100000, "ce 00 01 86 a0"}, {4900000000, "cf 00 00 00 01 24 10 11 00"},
      {-1, "ff"}, {-3, "fd"}, {-32, "e0"}, {-33, "d0 df"}, {-128, "d0 80"},
      {-129, "d1 ff 7f"}, {-300000, "d2 ff fb 6c 20"},
      {math.mininteger, "d3 80 00 00 00 00 00 00 00"},
      {math.maxinteger, "cf 7f ff ff ff ff ff ff ff"},
    }
    for _, c in ipairs(cases) do
      assert.are.equal(c[2], mp(c[1]), "encoding " .. c[1])
      assert.are.equal(c[1], core.decode(unhex(c[2])))
      assert.is_true(math.type(core.decode(unhex(c[2]))) == "integer")
    end
  end)

  it("writes Reply{C:56} exactly and round-trips Args{A:7,B:8}", function()
    assert.are.equal("81 a1 43 38", mp({C = 56}))
    local args = core.decode(unhex("82 a1 41 07 a1 42 08"))
    assert.are.same({A = 7, B = 8}, args)
    assert.are.same({A = 7, B = 8}, core.decode(core.encode(args)))
    assert.are.equal(7, #core.encode(args))
  end)

  it("tells arrays from maps and writes {} as an empty map", function()
    assert.are.equal("93 01 02 03", mp({1, 2, 3}))
    assert.are.equal("80", mp({}))
    assert.are.same({}, core.decode(unhex("90")))
    assert.are.same({}, core.decode(unhex("80")))
    -- A hole or an extra key makes a map.
    local holes = core.encode({[1] = 1, [3] = 3})
    assert.are.equal("82", hex(holes:sub(1, 1)))
    assert.are.same({[1] = 1, [3] = 3}, core.decode(holes))
    local m = core.decode(core.encode({1, 2, x = 3}))
    assert.are.same({1, 2, x = 3}, m)
    assert.are.equal("81 00 01", mp({[0] = 1}))
  end)

  it("writes scalars", function()
    assert.are.equal("c0", mp(nil))
    assert.are.equal("c0", mp(core.null))
    assert.are.equal("c3", mp(true))
    assert.are.equal("c2", mp(false))
    assert.are.equal("cb 3f f8 00 00 00 00 00 00", mp(1.5))
    assert.are.equal("cb 40 00 00 00 00 00 00 00", mp(2.0))
    assert.are.equal("a5 68 65 6c 6c 6f", mp("hello"))
    assert.are.equal("d9 20", mp(string.rep("x", 32)):sub(1, 5))
    assert.are.equal("da 01 00", mp(string.rep("x", 256)):sub(1, 8))
  end)

  it("writes bin(s) as bin, like Go's []byte", function()
    local s64 = string.rep("x", 64)
    assert.are.equal("c4 40", mp(core.bin(s64)):sub(1, 5))
    assert.are.equal("c5 04 a6", mp(core.bin(string.rep("z", 1190))):sub(1, 8))
    assert.are.equal("c6 00 01 00 00", mp(core.bin(string.rep("z", 65536))):sub(1, 14))
    assert.are.equal("a2 68 69", mp("hi"))
    assert.are.equal("c4 02 68 69", mp(core.bin("hi")))
    assert.are.equal("hi", tostring(core.bin("hi")))
    -- Both come back as strings.
    assert.are.equal(s64, core.decode(core.encode(core.bin(s64))))
    assert.are.same({b = "hi"}, core.decode(core.encode({b = core.bin("hi")})))
  end)

  it("keeps null inside arrays and maps", function()
    assert.are.equal("93 01 c0 03", mp({1, core.null, 3}))
    local t = core.decode(unhex("93 01 c0 03"))
    assert.are.equal(3, #t)
    assert.are.equal(core.null, t[2])
    local m = core.decode(unhex("81 a1 41 c0"))
    assert.are.equal(core.null, m.A)
    assert.is_nil(core.decode(unhex("c0")))
  end)

  it("names the path of a value it cannot encode", function()
    fails("EENCODE", "cannot encode a function value at args%.x$",
      core.encode({args = {x = print}}))
    fails("EENCODE", "at list%[2%]$", core.encode({list = {1, coroutine.create(print)}}))
    fails("EENCODE", "cannot encode a function value$", core.encode(print))
    fails("EENCODE", "userdata", core.encode(io.stdout))
    fails("EENCODE", "table as a map key", core.encode({[{}] = 1}))
  end)

  it("stops at cycles and deep nesting", function()
    local t = {}
    t.self = t
    fails("EDEPTH", "nesting deeper than max_depth 64 %(or a cycle%)", core.encode(t))
    local deep = {}
    for _ = 1, 1000 do deep = {deep} end
    fails("EDEPTH", "deeper than max_depth 64", core.encode(deep))
    fails("EDEPTH", "deeper than max_depth 64", core.encode(deep, "json"))
    local ok64 = 1
    for _ = 1, 64 do ok64 = {ok64} end
    assert.is_string(core.encode(ok64))
    fails("EDEPTH", nil, core.encode({ok64}))
    assert.is_string(core.encode({ok64}, 3, 65))
  end)
end)

describe("msgpack decoding", function()
  it("reads every type", function()
    assert.are.equal(1.5, core.decode(unhex("ca 3f c0 00 00")))
    assert.are.equal(2.25, core.decode(unhex("cb 40 02 00 00 00 00 00 00")))
    assert.are.equal(true, core.decode(unhex("c3")))
    assert.are.equal(false, core.decode(unhex("c2")))
    assert.are.equal(-2, core.decode(unhex("d1 ff fe")))
    assert.are.equal(-2, core.decode(unhex("d3 ff ff ff ff ff ff ff fe")))
    assert.are.equal(1700000000123456789, core.decode(unhex("d3 17 97 9c fe 3d 85 cd 15")))
    assert.are.equal("ab", core.decode(unhex("c4 02 61 62")))
    assert.are.equal("ab", core.decode(unhex("d9 02 61 62")))
    assert.are.equal("ab", core.decode(unhex("da 00 02 61 62")))
    assert.are.equal("ab", core.decode(unhex("c6 00 00 00 02 61 62")))
    assert.are.same({1, 2}, core.decode(unhex("dc 00 02 01 02")))
    assert.are.same({1, 2}, core.decode(unhex("dd 00 00 00 02 01 02")))
    assert.are.same({[1] = true}, core.decode(unhex("de 00 01 01 c3")))
    assert.are.same({[1.5] = "x"}, core.decode(unhex("df 00 00 00 01 cb 3f f8 00 00 00 00 00 00 a1 78")))
  end)

  it("turns a uint64 above int64's range into a float", function()
    local v = core.decode(unhex("cf ff ff ff ff ff ff ff ff"))
    assert.are.equal("float", math.type(v))
    assert.are.equal(18446744073709551615.0, v)
    assert.are.equal(math.maxinteger, core.decode(unhex("cf 7f ff ff ff ff ff ff ff")))
  end)

  it("reads Go timestamps as seconds and refuses other ext types", function()
    assert.are.equal(1700000000, core.decode(unhex("d6 ff 65 53 f1 00")))
    local ns = core.decode(unhex("d7 ff 77 35 94 00 65 53 f1 00")) -- 500000000 ns
    assert.are.equal(1700000000.5, ns)
    fails("EDECODE", "ext type 5 is not supported", core.decode(unhex("d4 05 00")))
    fails("EDECODE", "ext type 1 is not supported", core.decode(unhex("c7 01 01 00")))
  end)

  it("rejects garbage with a clear error and no crash", function()
    fails("EDECODE", "invalid msgpack type byte 0xc1", core.decode("\xc1"))
    fails("EDECODE", "truncated", core.decode(""))
    fails("EDECODE", "truncated", core.decode(unhex("a5 68 65")))
    fails("EDECODE", "truncated", core.decode(unhex("db ff ff ff ff 61")))
    fails("EDECODE", "array count larger than the bytes left",
      core.decode(unhex("dd ff ff ff ff 01 02")))
    fails("EDECODE", "map count larger", core.decode(unhex("df ff ff ff ff 01 02")))
    fails("EDECODE", "truncated", core.decode(unhex("92 01")))
    fails("EDECODE", "truncated", core.decode(unhex("cd 01")))
    fails("EDECODE", "truncated", core.decode(unhex("82 a1 41 07 a1")))
    fails("EDECODE", "trailing", core.decode(unhex("07 07")))
    fails("EDECODE", "key is nil", core.decode(unhex("81 c0 01")))
    fails("EDECODE", "key is NaN", core.decode(unhex("81 cb 7f f8 00 00 00 00 00 00 01")))
  end)

  it("survives every truncation and random bytes", function()
    local whole = core.encode({A = 7, list = {1, "two", 3.5, core.bin("x"), {y = true}}})
    for i = 0, #whole - 1 do
      fails("EDECODE", nil, core.decode(whole:sub(1, i)))
    end
    math.randomseed(42)
    for _ = 1, 2000 do
      local t = {}
      for i = 1, math.random(1, 24) do t[i] = string.char(math.random(0, 255)) end
      local s = table.concat(t)
      local v, code, msg = core.decode(s)
      if v == nil and code then assert.is_string(msg) end
      v, code, msg = core.decode(s, "json")
      if v == nil and code then assert.is_string(msg) end
    end
  end)

  it("stops at nesting deeper than max_depth", function()
    fails("EDEPTH", "nesting deeper than max_depth 64", core.decode(string.rep("\x91", 1000) .. "\x00"))
    fails("EDEPTH", nil, core.decode(string.rep("\x81\x00", 1000) .. "\x00"))
    local v = core.decode(string.rep("\x91", 64) .. "\x00")
    for _ = 1, 64 do v = v[1] end
    assert.are.equal(0, v)
    fails("EDEPTH", "deeper than max_depth 3", core.decode(unhex("91 91 91 91 00"), 3, 3))
  end)
end)

describe("JSON", function()
  local function js(v) return assert(core.encode(v, "json")) end

  it("writes what Go writes", function()
    assert.are.equal('{"C":56}', js({C = 56}))
    local ab = js({A = 7, B = 8})
    assert.is_true(ab == '{"A":7,"B":8}' or ab == '{"B":8,"A":7}')
    assert.are.same({A = 7, B = 8}, core.decode('{"A":7,"B":8}', "json"))
    assert.are.same({A = 7, B = 8}, core.decode(ab, 1))
    assert.are.equal("[1,2,3]", js({1, 2, 3}))
    assert.are.equal("{}", js({}))
    assert.are.equal("null", js(nil))
    assert.are.equal("[1,null,true,false]", js({1, core.null, true, false}))
    assert.are.equal('["a"]', js({"a"}))
    assert.are.same({["1"] = "a", ["3"] = "c"}, core.decode(js({[1] = "a", [3] = "c"}), "json"))
    assert.are.equal('{"1.5":true}', js({[1.5] = true}))
    assert.are.equal('{"0":"a"}', js({[0] = "a"}))
  end)

  it("writes exact integers and shortest floats", function()
    assert.are.equal("9223372036854775807", js(math.maxinteger))
    assert.are.equal("-9223372036854775808", js(math.mininteger))
    assert.are.equal("0.1", js(0.1))
    assert.are.equal("1.5", js(1.5))
    assert.are.equal("3", js(3.0))
    assert.are.equal("0.30000000000000004", js(0.1 + 0.2))
    assert.are.equal("1e+21", js(1e21))
    for _, f in ipairs({math.pi, 1 / 3, 2 ^ 53 + 0.0, 1e-300, -123.456}) do
      assert.are.equal(f, core.decode(js(f), "json"))
    end
    fails("EENCODE", "NaN or infinity", core.encode(0 / 0, "json"))
    fails("EENCODE", "NaN or infinity", core.encode({x = math.huge}, "json"))
  end)

  it("escapes strings per RFC 8259 and passes UTF-8 through", function()
    assert.are.equal('"h\xc3\xa9llo"', js("h\xc3\xa9llo"))
    assert.are.equal('"a\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f/"', js('a"b\\c\n\t\r\b\f\1\31/'))
    assert.are.equal('"\\u0000"', js("\0"))
  end)

  it("writes bin(s) as base64", function()
    assert.are.equal('""', js(core.bin("")))
    assert.are.equal('"Zg=="', js(core.bin("f")))
    assert.are.equal('"Zm8="', js(core.bin("fo")))
    assert.are.equal('"Zm9v"', js(core.bin("foo")))
    assert.are.equal('"Zm9vYmFy"', js(core.bin("foobar")))
    assert.are.equal('{"b":"/w=="}', js({b = core.bin("\xff")}))
  end)

  it("decodes numbers exactly", function()
    local function jd(s) return core.decode(s, "json") end
    assert.are.equal("integer", math.type(jd("42")))
    assert.are.equal(9223372036854775807, jd("9223372036854775807"))
    assert.are.equal(math.mininteger, jd("-9223372036854775808"))
    assert.are.equal("integer", math.type(jd("-9223372036854775808")))
    assert.are.equal("float", math.type(jd("9223372036854775808")))
    assert.are.equal("float", math.type(jd("1.0")))
    assert.are.equal("float", math.type(jd("1e2")))
    assert.are.equal(100.0, jd("1E+2"))
    assert.are.equal(-0.5, jd(" -0.5 "))
    assert.are.equal(1e300, jd("1" .. string.rep("0", 300)))
    for _, bad in ipairs({"01", "1.", ".5", "-", "1e", "+1", "0x10", "1.5.2", "Infinity", "NaN"}) do
      fails("EDECODE", nil, jd(bad))
    end
  end)

  it("decodes strings, unicode escapes and surrogate pairs", function()
    local function jd(s) return core.decode(s, "json") end
    assert.are.equal("h\xc3\xa9llo", jd('"h\xc3\xa9llo"'))
    assert.are.equal("h\xc3\xa9llo", jd('"h\\u00e9llo"'))
    assert.are.equal("\xe2\x82\xac", jd('"\\u20AC"'))
    assert.are.equal("\xf0\x9f\x98\x80", jd('"\\ud83d\\ude00"'))
    assert.are.equal("\xef\xbf\xbdx", jd('"\\ud83dx"'))
    assert.are.equal("\0", jd('"\\u0000"'))
    assert.are.equal('a"b\\c/\n\t\r\b\f', jd('"a\\"b\\\\c\\/\\n\\t\\r\\b\\f"'))
    local s = string.rep("\xe4\xbd\xa0\"\\\n\1", 50)
    assert.are.equal(s, jd(js(s)))
    fails("EDECODE", "bad escape", jd('"\\x"'))
    fails("EDECODE", "bad \\u escape", jd('"\\u12"'))
    fails("EDECODE", "unterminated", jd('"abc'))
    fails("EDECODE", "unterminated", jd('"abc\\'))
    fails("EDECODE", "control character", jd('"a\nb"'))
  end)

  it("decodes structures, null and whitespace", function()
    local function jd(s) return core.decode(s, "json") end
    local v = jd(' { "a" : [ 1 , null , "x" ] , "b" : { } , "c" : [ ] , "d" : null } ')
    assert.are.equal(3, #v.a)
    assert.are.equal(core.null, v.a[2])
    assert.are.equal(core.null, v.d)
    assert.are.same({}, v.b)
    assert.are.same({}, v.c)
    assert.is_nil(jd("null"))
    assert.are.equal(true, jd("true"))
    assert.are.equal(false, jd("false"))
    for _, bad in ipairs({"", " ", "[1,]", "[1 2]", '{"a" 1}', '{"a":1,}', "{1:2}", "[", "{",
                          "tru", "nul", "[1]x", '{"a":1}}', "\xff"}) do
      fails("EDECODE", nil, jd(bad))
    end
  end)

  it("stops at 1000-deep nesting", function()
    fails("EDEPTH", "JSON nesting deeper than max_depth 64", core.decode(string.rep("[", 1000) .. string.rep("]", 1000), "json"))
    fails("EDEPTH", nil, core.decode(string.rep('{"a":', 1000) .. "1" .. string.rep("}", 1000), "json"))
    assert.is_table(core.decode(string.rep("[", 64) .. string.rep("]", 64), "json"))
  end)

  it("rejects keys JSON cannot hold", function()
    fails("EENCODE", "boolean as a JSON object key", core.encode({[true] = 1}, "json"))
    fails("EENCODE", "cannot encode a function value at f", core.encode({f = print}, "json"))
  end)
end)

describe("raw payloads", function()
  it("pass strings and bin(s) through", function()
    assert.are.equal("\0\1\2", core.encode("\0\1\2", "raw"))
    assert.are.equal("xy", core.encode(core.bin("xy"), 0))
    assert.are.equal("", core.encode("", "none"))
    assert.are.equal("\xc1\0", core.decode("\xc1\0", "raw"))
    assert.are.equal("", core.decode("", 0))
  end)

  it("refuse anything else", function()
    fails("EENCODE", "raw payloads must be strings", core.encode({}, "raw"))
    fails("EENCODE", "raw payloads must be strings", core.encode(5, 0))
    fails("EENCODE", "raw payloads must be strings", core.encode(nil, 0))
  end)
end)

describe("serialize types", function()
  it("refuses unknown numbers with ECODEC and raises on bad names", function()
    fails("ECODEC", "unknown serialize type 2", core.encode(1, 2))
    fails("ECODEC", "unknown serialize type 4", core.decode("x", 4))
    assert.has_error(function() core.encode(1, "yaml") end)
    assert.has_error(function() core.decode({}) end)
    assert.has_error(function() core.bin(5) end)
  end)

  it("default to msgpack", function()
    assert.are.equal(core.encode({C = 56}, 3), core.encode({C = 56}))
    assert.are.equal(core.encode({C = 56}, "msgpack"), core.encode({C = 56}))
  end)
end)
