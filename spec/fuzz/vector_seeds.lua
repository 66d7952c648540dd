-- spec/fuzz/vector_seeds.lua VECTORS_JSON OUT_DIR: seeds for the fuzz
-- harnesses from the frames captured from Go rpcx (../shared/rpcx-vectors),
-- written under OUT_DIR/<harness>/ (the build tree): the vectors stay where
-- they are and are never copied into the project.
--   frame      each frame, prefixed with the harness's two control bytes
--              (a chunking seed; default limits, or small ones), and all
--              the frames of a direction back to back as one stream
--   gzip       each gzip payload as sent, under the default cap (255)
--   lua_codec  each msgpack or JSON payload, under its codec byte
--   regsrv     likewise, for the msgpack <-> cJSON bridge
local json = require "dkjson"
local vec, out = arg[1], arg[2]
local f = assert(io.open(vec, "rb"))
local list = assert(json.decode(f:read("a")))
f:close()

local function unhex(h) return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end)) end
local function write(dir, name, bytes)
  os.execute("mkdir -p '" .. out .. "/" .. dir .. "'")
  local w = assert(io.open(out .. "/" .. dir .. "/" .. name, "wb"))
  w:write(bytes)
  w:close()
end

local streams = {}
for i, v in ipairs(list) do
  local frame, fl = unhex(v.hex), v.fields or {}
  local name = (v.name or ("v" .. i)):gsub("[^%w_]", "_")
  write("frame", name, string.char(i % 256, 0) .. frame)
  write("frame", name .. "_small", string.char(i % 256, 0x81) .. frame)
  streams[v.direction] = (streams[v.direction] or "") .. frame
  if fl.compress_name == "Gzip" and fl.payload_wire_hex then
    write("gzip", name, "\255" .. unhex(fl.payload_wire_hex))
  end
  local payload = fl.payload_hex and unhex(fl.payload_hex)
  if payload and #payload > 0 then
    local ser = fl.serialize_name == "MsgPack" and 1 or fl.serialize_name == "JSON" and 0 or nil
    if ser then
      -- codec bit 0, depth bits: 63 for the registry bridge, 15 for Lua
      write("lua_codec", name, string.char(ser | (15 << 1)) .. payload)
      write("regsrv", name, string.char(ser | (63 << 1)) .. payload)
    end
  end
end
for dir, s in pairs(streams) do
  write("frame", "stream_" .. dir:gsub("[^%w]", "_"), "\7\0" .. s)
end
