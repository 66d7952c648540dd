--- Spec: moonrpc's server answers the captured rpcx requests with the
-- captured rpcx responses, byte for byte (../shared/rpcx-vectors).
--
-- Every client->server vector is sent on a raw TCP connection to
-- spec/servers/vectors_server.lua (the same services as the Go server that
-- recorded them). Special cases, from the vectors' README:
--
-- * oneway requests get no reply at all; the next call on the same
--   connection is answered;
-- * async_request_0/1 are in flight together, so their responses may come
--   back in either order;
-- * metadata with two pairs may be written in either order
--   (hex_other_metadata_order);
-- * gzip_response: our compressor (zlib) does not write Go's bytes (Go
--   writes OS byte 0xff and a sync-flush block), and both are valid gzip.
--   So for a gzipped response every header byte except total_len, the
--   path, the method and the metadata are compared exactly, the payload
--   length field must match the payload, the payload must start with the
--   gzip magic 1f 8b 08, and once gunzipped (with gzip(1), on the test
--   side) it must equal the recorded decompressed payload exactly. The
--   client side of gzip (compress="gzip" round trips) is covered by the
--   client spec.
local S = require "support"

local vectors, index = S.load_vectors()

local ONEWAY = { oneway_request = true, encoded_oneway_unknown_service_request = true }
local ASYNC = { async_request_0 = true, async_request_1 = true }
local FOLLOWUP = "oneway_followup_request"

-- Checks a received frame against the recorded response `exp`.
local function check_response(exp, got, label)
  assert.is_string(got, label .. ": no response")
  local ef = exp.fields
  if ef.compress_type ~= 0 then
    local want = assert(S.parse_frame(exp.bytes))
    local f, perr = S.parse_frame(got)
    assert.is_table(f, label .. ": unparsable response: " .. tostring(perr))
    assert.are.equal(S.hex(exp.bytes:sub(1, 12)), S.hex(got:sub(1, 12)), label .. ": header bytes 0..11")
    assert.are.equal(want.path, f.path, label .. ": service path")
    assert.are.equal(want.method, f.method, label .. ": service method")
    assert.are.equal(S.hex(want.meta_block), S.hex(f.meta_block), label .. ": metadata")
    assert.are.equal(#f.payload, f.payload_len_field, label .. ": payload length field")
    assert.are.equal("1f8b08", S.hex(f.payload:sub(1, 3)), label .. ": gzip magic")
    local plain, gerr = S.gunzip(f.payload)
    assert.is_string(plain, label .. ": payload does not gunzip: " .. tostring(gerr))
    assert.are.equal(ef.payload_hex, S.hex(plain), label .. ": decompressed payload")
    return
  end
  if exp.bytes_other and got == exp.bytes_other then return end
  assert.are.equal(exp.hex, S.hex(got), label .. ": response bytes")
end

describe("rpcx vector replay", function()
  if not vectors then
    it("needs the captured vectors", function() pending(index) end)
    return
  end

  local srv
  setup(function() srv = S.spawn(S.vectors_server) end)
  teardown(function() if srv then srv.stop() end end)

  local function connect()
    return assert(S.raw_connect(srv.host, srv.port))
  end

  for _, v in ipairs(vectors) do
    if v.direction == "client->server" then
      local name = v.name
      if ONEWAY[name] then
        it(name .. " gets no reply; the next call on the connection does", function()
          local c = connect()
          finally(function() c:close() end)
          S.send_all(c, v.bytes)
          local data, err = S.read_any(c, 0.2)
          assert.is_nil(data, name .. ": the server answered a oneway request")
          assert.are.equal("timeout", err, name .. ": connection not kept open")
          S.send_all(c, index[FOLLOWUP].bytes)
          local got, rerr = S.read_frame(c, 2)
          assert.is_string(got, name .. ": follow-up not answered: " .. tostring(rerr))
          check_response(index[index[FOLLOWUP].pair], got, name .. " follow-up")
        end)
      elseif ASYNC[name] then
        if name == "async_request_0" then
          it("async_request_0 and async_request_1 sent together get both responses (any order)", function()
            local c = connect()
            finally(function() c:close() end)
            S.send_all(c, index.async_request_0.bytes .. index.async_request_1.bytes)
            local got = {}
            for i = 1, 2 do
              local r, err = S.read_frame(c, 2)
              assert.is_string(r, "async response " .. i .. ": " .. tostring(err))
              got[i] = S.hex(r)
            end
            local want = { index.async_response_0.hex, index.async_response_1.hex }
            table.sort(got)
            table.sort(want)
            assert.are.same(want, got)
          end)
        end
      else
        it(name .. " -> " .. tostring(v.pair), function()
          local exp = index[v.pair or ""]
          assert.is_table(exp, name .. ": no recorded response and no special rule for this vector")
          local c = connect()
          finally(function() c:close() end)
          S.send_all(c, v.bytes)
          local got, err = S.read_frame(c, 2)
          assert.is_string(got, name .. ": " .. tostring(err))
          check_response(exp, got, name)
        end)
      end
    end
  end

  it("answers every request of one concatenated write, in order", function()
    local sent, expected = {}, {}
    for _, v in ipairs(vectors) do
      if v.direction == "client->server" and not ONEWAY[v.name] and not ASYNC[v.name] then
        sent[#sent + 1] = v.bytes
        expected[#expected + 1] = assert(index[v.pair], v.name .. " has no pair")
      end
    end
    assert.is_true(#expected >= 15, "too few vectors")
    local c = connect()
    finally(function() c:close() end)
    S.send_all(c, table.concat(sent))
    for i, exp in ipairs(expected) do
      local got, err = S.read_frame(c, 3)
      assert.is_string(got, "response #" .. i .. " (" .. exp.name .. "): " .. tostring(err))
      check_response(exp, got, "response #" .. i .. " (" .. exp.name .. ")")
    end
    local extra = S.read_any(c, 0.1)
    assert.is_nil(extra, "bytes after the last response")
  end)

  it("leaves the server running", function()
    assert.is_true(srv.alive(), "server died; its output:\n" .. srv.output())
  end)
end)
