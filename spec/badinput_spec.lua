--- Spec: the server survives hostile and malformed input.
--
-- Each bad input goes on its own raw connection to
-- spec/servers/vectors_server.lua, while a second raw connection (the
-- probe) keeps calling Arith.Mul successfully before and after every case.
-- A case must end in a clear error reply (status 1, __rpcx_error__
-- checked) or a clean close of that one connection within 2 s; a hang
-- fails the test, and so does a dead server (checked after each case).
-- The limits are the defaults of core/include/moonrpc/common.h.
local S = require "support"
local socket = require "socket"

local vectors, index = S.load_vectors()

-- Arith.Mul {A:7,B:8}, as the Go client sends it (arith_mul_msgpack_request).
local MUL_ARGS = S.unhex("82a14107a14208")
local MUL_REPLY = S.unhex("81a14338")

local function mul_request(t)
  local f = { path = "Arith", method = "Mul", payload = MUL_ARGS, serialize = 3 }
  for k, v in pairs(t or {}) do f[k] = v end
  return S.build_frame(f)
end

local function nested_array(depth)
  return string.rep("\x91", depth) .. "\x00"
end

-- Reads the outcome of a bad input on `c`: "reply", frame | "closed" |
-- "timeout" | other luasocket error.
local function outcome(c, timeout)
  local got, err = S.read_frame(c, timeout or 2)
  if got then return "reply", got end
  if err == "connection reset by peer" then err = "closed" end
  return err
end

describe("bad input", function()
  local srv, probe, probe_seq

  setup(function()
    srv = S.spawn(S.vectors_server)
    probe = assert(S.raw_connect(srv.host, srv.port))
    probe_seq = 0
  end)
  teardown(function()
    if probe then probe:close() end
    if srv then srv.stop() end
  end)

  -- One Arith.Mul on the long-lived probe connection.
  local function probe_call(when)
    probe_seq = probe_seq + 1
    S.send_all(probe, mul_request { seq = probe_seq })
    local got, err = S.read_frame(probe, 2)
    assert.is_string(got, "probe call " .. when .. ": " .. tostring(err))
    local f = assert(S.parse_frame(got))
    assert.are.equal(0x80, f.flags, "probe call " .. when .. ": flags")
    assert.are.equal(probe_seq, f.seq, "probe call " .. when .. ": seq")
    assert.are.equal("Arith", f.path)
    assert.are.equal("Mul", f.method)
    assert.are.equal("", f.meta_block)
    assert.are.equal(S.hex(MUL_REPLY), S.hex(f.payload), "probe call " .. when .. ": payload")
  end

  local function server_ok(when)
    assert.is_true(srv.alive(), "server died " .. when .. "; its output:\n" .. srv.output())
    probe_call(when)
  end

  -- Runs `fn(conn)` on a fresh connection between two probe calls.
  local function case(fn)
    server_ok("before the case")
    local c = assert(S.raw_connect(srv.host, srv.port))
    local ok, err = pcall(fn, c)
    c:close()
    if not ok then error(err, 0) end
    server_ok("after the case")
  end

  -- Sends `bytes` and requires an error reply whose __rpcx_error__
  -- satisfies `check` (a string: equal; a function: called with the text).
  local function expect_error(bytes, check)
    case(function(c)
      S.send_all(c, bytes)
      local kind, frame = outcome(c)
      assert.are.equal("reply", kind, "expected an error reply, got: " .. tostring(kind))
      local f = assert(S.parse_frame(frame))
      local sent = assert(S.parse_frame(bytes))
      assert.are.equal(0x81, f.flags & 0x83, "response bit and status error")
      assert.are.equal(sent.seq, f.seq, "seq")
      local text = f.meta.__rpcx_error__
      assert.is_string(text, "no __rpcx_error__ in the reply")
      if type(check) == "string" then
        assert.are.equal(check, text)
      else
        check(text)
      end
    end)
  end

  -- Sends `bytes` (the server may close while we write) and requires an
  -- error reply or a close, within 2 s.
  local function expect_close_or_error(bytes)
    case(function(c)
      local sent_ok, serr = pcall(S.send_all, c, bytes)
      local kind, frame = outcome(c)
      if kind == "reply" then
        local f = assert(S.parse_frame(frame))
        assert.are.equal(1, f.status, "a reply to bad input must be an error")
        assert.is_string(f.meta.__rpcx_error__, "error reply without __rpcx_error__")
      else
        assert.are.equal("closed", kind,
          "server neither answered nor closed (send: " .. tostring(sent_ok and "ok" or serr) .. ")")
      end
    end)
  end

  it("probe frame is the recorded arith_mul_msgpack_request", function()
    if not vectors then pending(index) end
    assert.are.equal(index.arith_mul_msgpack_request.hex, S.hex(mul_request { seq = 0 }))
  end)

  describe("frames the server cannot decode", function()
    it("wrong magic number: closed or error", function()
      expect_close_or_error(mul_request { magic = 0x09 })
    end)

    it("a truncated frame, then close, does not disturb other connections", function()
      case(function(c)
        local whole = mul_request { seq = 5 }
        S.send_all(c, whole:sub(1, #whole // 2))
        socket.sleep(0.05)
        c:close()
        socket.sleep(0.05)
      end)
      -- And a new connection is served as well as the probe.
      local got, err = S.roundtrip(srv.host, srv.port, mul_request { seq = 6 }, 2)
      assert.is_string(got, tostring(err))
      assert.are.equal(S.hex(MUL_REPLY), S.hex(assert(S.parse_frame(got)).payload))
    end)

    it("total length above max_frame (a header announcing 1 GiB): closed or error", function()
      local header = string.pack(">BBBBI8I4", 8, 0, 0, 0x30, 1, 1024 * 1024 * 1024)
      expect_close_or_error(header)
    end)

    it("total length just above the default max_frame, body sent: closed or error", function()
      local payload = string.rep("x", 16 * 1024 * 1024)
      expect_close_or_error(S.build_frame { path = "Echo", method = "Echo", serialize = 0, payload = payload })
    end)

    it("metadata length past the end of the frame: closed or error", function()
      local body = string.pack(">s4s4", "Arith", "Mul") .. string.pack(">I4", 1000) .. "\0\0\0\1k"
      local frame = string.pack(">BBBBI8I4", 8, 0, 0, 0x30, 1, #body) .. body
      expect_close_or_error(frame)
    end)

    it("a metadata pair running past its block: closed or error", function()
      local block = string.pack(">I4", 50) .. "k" -- key length 50, one byte
      expect_close_or_error(mul_request { meta_block = block })
    end)

    it("more metadata pairs than max_meta_pairs (65): closed or error", function()
      local meta = {}
      for i = 1, 65 do meta[i] = { "k" .. i, "v" } end
      expect_close_or_error(mul_request { meta = meta })
    end)

    it("a metadata block above max_meta_bytes (70000 bytes): closed or error", function()
      expect_close_or_error(mul_request { meta = { { "k", string.rep("v", 70000) } } })
    end)

    -- rpcx's decoder ignores the payload length field (README, Payload);
    -- moonrpc checks it (core/src/frame.c) and closes the connection, as
    -- the README's "Limits" section says.
    for _, n in ipairs { 0, 999 } do
      it("a payload length field of " .. n .. " on a 7-byte payload: closed", function()
        case(function(c)
          S.send_all(c, mul_request { seq = 3, payload_len = n })
          local kind = outcome(c)
          assert.are.equal("closed", kind, "a wrong payload length field must close the connection")
        end)
      end)
    end

    it("unknown compress type 7: closed or error", function()
      expect_close_or_error(mul_request { compress = 7 })
    end)

    it("gzip that is not gzip: closed or error", function()
      expect_close_or_error(mul_request { compress = 1, payload = "not gzip at all" })
    end)

    it("gzip bomb (64 MiB of zeros): closed or error", function()
      local bomb = S.gzip_zeros(64 * 1024 * 1024)
      assert.is_true(#bomb > 1000 and #bomb < 200000, "gzip(1) output size " .. #bomb)
      expect_close_or_error(S.build_frame { path = "Echo", method = "Echo", serialize = 0,
                                            compress = 1, payload = bomb })
    end)
  end)

  describe("requests the server answers with an error", function()
    it("garbage msgpack args to Arith.Mul", function()
      expect_error(mul_request { payload = "\xc1" }, function(text)
        assert.matches("[Dd]ecod", text, 1, false, "error text should say the args did not decode")
      end)
    end)

    it("1000-deep nested msgpack args", function()
      expect_error(mul_request { payload = nested_array(1000) }, function(text)
        local l = text:lower()
        assert.is_truthy(l:find("depth") or l:find("nest"), "error text: " .. text)
      end)
    end)

    it("1000-deep nested JSON args", function()
      expect_error(mul_request { serialize = 1, payload = string.rep("[", 1000) .. string.rep("]", 1000) },
        function(text)
          local l = text:lower()
          assert.is_truthy(l:find("depth") or l:find("nest"), "error text: " .. text)
        end)
    end)

    it("unknown service", function()
      expect_error(mul_request { path = "Nope" }, "rpcx: can't find service Nope")
    end)

    it("unknown method", function()
      expect_error(mul_request { method = "Nope" }, "rpcx: can't find method Nope")
    end)

    it("unknown codec (serialize 9)", function()
      expect_error(mul_request { serialize = 9 }, "can not find codec for 9")
    end)

    it("a handler that raises", function()
      expect_error(S.build_frame { path = "Bad", method = "Raise", payload = "\xc0" }, "boom")
    end)

    it("a handler that returns a function", function()
      expect_error(S.build_frame { path = "Bad", method = "Func", payload = "\xc0" }, function(text)
        assert.matches("cannot encode", text, 1, true)
      end)
    end)
  end)

  describe("with limits passed to moonrpc.server", function()
    local small
    setup(function()
      small = S.spawn(S.vectors_server, "-", "max_frame=4096", "max_depth=8", "max_meta_pairs=2")
    end)
    teardown(function() if small then small.stop() end end)

    local function send(bytes)
      local c = assert(S.raw_connect(small.host, small.port))
      pcall(S.send_all, c, bytes)
      local kind, frame = outcome(c)
      c:close()
      return kind, frame
    end

    local function echo(payload, meta)
      return S.build_frame { path = "Echo", method = "Echo", serialize = 0, payload = payload, meta = meta }
    end

    it("max_frame: a 4096-byte frame is served, a larger one closed or refused", function()
      local fits = echo(string.rep("x", 4096 - #echo("")))
      assert.are.equal(4096, #fits)
      local kind, frame = send(fits)
      assert.are.equal("reply", kind)
      assert.are.equal(0, assert(S.parse_frame(frame)).status)
      kind, frame = send(echo(string.rep("x", 4097 - #echo(""))))
      if kind == "reply" then
        assert.are.equal(1, assert(S.parse_frame(frame)).status)
      else
        assert.are.equal("closed", kind)
      end
    end)

    it("max_depth: 8 levels are decoded, 9 are refused with a depth error", function()
      local kind, frame = send(mul_request { path = "Echo", method = "Str", payload = nested_array(8) })
      assert.are.equal("reply", kind)
      local f = assert(S.parse_frame(frame))
      assert.are.equal(0, f.status, tostring(f.meta.__rpcx_error__))
      assert.are.equal(S.hex(nested_array(8)), S.hex(f.payload))
      kind, frame = send(mul_request { path = "Echo", method = "Str", payload = nested_array(9) })
      assert.are.equal("reply", kind)
      f = assert(S.parse_frame(frame))
      assert.are.equal(1, f.status)
      assert.matches("deeper than max_depth 8", f.meta.__rpcx_error__, 1, true)
    end)

    it("max_meta_pairs: 2 pairs are served, 3 closed or refused", function()
      local kind, frame = send(echo("hi", { { "a", "1" }, { "b", "2" } }))
      assert.are.equal("reply", kind)
      assert.are.equal(0, assert(S.parse_frame(frame)).status)
      kind, frame = send(echo("hi", { { "a", "1" }, { "b", "2" }, { "c", "3" } }))
      if kind == "reply" then
        assert.are.equal(1, assert(S.parse_frame(frame)).status)
      else
        assert.are.equal("closed", kind)
      end
      assert.is_true(small.alive())
    end)
  end)

  it("20 connections abandoned mid-frame do not stop the server", function()
    server_ok("before")
    local conns = {}
    finally(function() for _, c in ipairs(conns) do c:close() end end)
    local whole = mul_request { seq = 1 }
    for i = 1, 20 do
      local c = assert(S.raw_connect(srv.host, srv.port))
      conns[i] = c
      S.send_all(c, whole:sub(1, 7 + i)) -- various cut points
    end
    server_ok("with 20 half-sent frames pending")
    for _, c in ipairs(conns) do c:close() end
    conns = {}
    socket.sleep(0.05)
    server_ok("after the 20 connections closed")
  end)

  it("the server is still alive and serving at the end", function()
    server_ok("at the end")
    local got, err = S.roundtrip(srv.host, srv.port, mul_request { seq = 77 }, 2)
    assert.is_string(got, tostring(err))
    assert.are.equal(77, assert(S.parse_frame(got)).seq)
  end)
end)
