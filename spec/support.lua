--- spec/support.lua: helpers shared by the busted specs.
--
-- Byte helpers (hex, unhex), the captured rpcx vectors (load_vectors), a
-- child server process (spawn), raw TCP access (raw_connect, read_frame)
-- and a frame parser and builder written from the frame layout in
-- ../shared/rpcx-vectors/README.md. Nothing here uses the moonrpc codec:
-- the specs check moonrpc's bytes against an independent reading of the
-- wire format.
-- @module support

local socket = require "socket"

local M = {}

--- The directory of the specs (where this file lives), and the test server.
M.spec_dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec"
M.vectors_server = M.spec_dir .. "/servers/vectors_server.lua"

-- ---- bytes ---------------------------------------------------------------

--- Bytes to lowercase hex, no separators.
function M.hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

--- Hex (whitespace allowed) to bytes.
function M.unhex(h)
  h = h:gsub("%s", "")
  assert(#h % 2 == 0 and not h:find("%X"), "bad hex string")
  return (h:gsub("%x%x", function(b) return string.char(tonumber(b, 16)) end))
end

local function read_all(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
M.read_all = read_all

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shell_quote = shell_quote

-- ---- the vectors -----------------------------------------------------------

--- The directory of the captured vectors: $MOONRPC_VECTORS, or
-- ../shared/rpcx-vectors relative to the working directory.
function M.vectors_dir()
  return os.getenv("MOONRPC_VECTORS") or "../shared/rpcx-vectors"
end

--- Reads vectors.json. Returns the list of vectors and an index by name,
-- or nil and a reason (for `pending`) when the vectors are not there.
function M.load_vectors()
  local dir = M.vectors_dir()
  local text = read_all(dir .. "/vectors.json")
  if not text then
    return nil, "rpcx vectors not found at " .. dir .. ": ../shared is not beside this clone"
  end
  local json = require "dkjson"
  local list, _, err = json.decode(text)
  if type(list) ~= "table" then
    error("cannot parse " .. dir .. "/vectors.json: " .. tostring(err))
  end
  local by_name = {}
  for _, v in ipairs(list) do
    v.bytes = M.unhex(v.hex)
    if v.hex_other_metadata_order then v.bytes_other = M.unhex(v.hex_other_metadata_order) end
    by_name[v.name] = v
  end
  return list, by_name
end

-- ---- child processes ------------------------------------------------------------

--- True while process `pid` exists and is not a zombie (an orphaned child
-- may stay a zombie when pid 1 does not reap).
function M.alive(pid)
  local stat = read_all("/proc/" .. pid .. "/stat")
  if stat then
    local state = stat:match("%) (%a)")
    return state ~= nil and state ~= "Z" and state ~= "X"
  end
  if io.open("/proc/self/stat") then return false end -- /proc works: pid is gone
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

local function wait_gone(pid, seconds)
  local deadline = socket.gettime() + seconds
  while socket.gettime() < deadline do
    if not M.alive(pid) then return true end
    socket.sleep(0.02)
  end
  return not M.alive(pid)
end

--- Starts `lua5.4 script args...` in the background with this process's
-- LUA_PATH and LUA_CPATH, waits (at most 5 s) for the first line of its log
-- to read "listening on ADDR", and returns a handle:
-- {addr=, host=, port=, pid=, log=, stop=function, alive=function,
-- output=function}. Raises, with the log, if the server does not start.
function M.spawn(script, ...)
  local log = os.tmpname()
  local parts = {}
  for _, name in ipairs { "LUA_PATH", "LUA_CPATH" } do
    local v = os.getenv(name)
    if v then parts[#parts + 1] = name .. "=" .. shell_quote(v) end
  end
  parts[#parts + 1] = "exec lua5.4 " .. shell_quote(script)
  for i = 1, select("#", ...) do parts[#parts + 1] = shell_quote((select(i, ...))) end
  local inner = table.concat(parts, " ")
  local cmd = "sh -c " .. shell_quote("(" .. inner .. ") > " .. shell_quote(log) .. " 2>&1 & echo $!")
  local p = assert(io.popen(cmd, "r"))
  local pid = tonumber(p:read("l"))
  p:close()
  assert(pid, "spawn: no pid for " .. script)

  local h = { pid = pid, log = log }
  function h.output() return read_all(log) or "" end
  function h.alive() return M.alive(pid) end
  function h.stop()
    if h.stopped then return end
    h.stopped = true
    if M.alive(pid) then
      os.execute("kill -TERM " .. pid .. " 2>/dev/null")
      if not wait_gone(pid, 5) then
        os.execute("kill -KILL " .. pid .. " 2>/dev/null")
        wait_gone(pid, 2)
      end
    end
    os.remove(log)
  end

  local deadline = socket.gettime() + 5
  while true do
    local first = (read_all(log) or ""):match("^([^\n]*)\n")
    local addr = first and first:match("^listening on (%S+)")
    if addr then
      h.addr = addr
      h.host, h.port = addr:match("^%w+@(.+):(%d+)$")
      h.port = tonumber(h.port)
      assert(h.host and h.port, "spawn: cannot parse address " .. addr)
      return h
    end
    if first or not M.alive(pid) or socket.gettime() > deadline then
      local out = h.output()
      h.stop()
      error("spawn: " .. script .. " did not start listening; its output:\n" .. out, 2)
    end
    socket.sleep(0.02)
  end
end

--- Decodes standard base64.
function M.unbase64(s)
  local abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local bits = s:gsub("[^%w+/]", ""):gsub(".", function(c)
    local v = abc:find(c, 1, true) - 1
    local t = {}
    for i = 5, 0, -1 do t[#t + 1] = (v >> i) & 1 end
    return table.concat(t)
  end)
  return (bits:gsub("%d%d%d%d%d%d%d%d", function(b) return string.char(tonumber(b, 2)) end)
              :gsub("%d+$", ""))
end

--- The address ("127.0.0.1:PORT") of the etcd or Redis that a ctest
-- fixture started, from $VAR/addr (MOONRPC_ETCD_DIR, MOONRPC_REDIS_DIR);
-- nil outside ctest.
function M.backend_addr(var)
  local dir = os.getenv(var)
  local f = dir and io.open(dir .. "/addr")
  if not f then return nil end
  local a = f:read("l")
  f:close()
  return a
end

--- Inside a describe: when backend `b` ({name=, addr=}) has no fixture
-- address, adds one pending test saying so and returns true (the caller
-- then defines nothing else).
function M.pending_without(b)
  if b.addr then return false end
  it("needs a running " .. b.name, function()
    pending("no " .. b.name .. " fixture (run through ctest: spec/" .. b.name .. ".cmake)")
  end)
  return true
end

-- ---- raw sockets ----------------------------------------------------------------------

--- A connected luasocket TCP with a timeout (seconds, default 2), or nil, err.
function M.raw_connect(host, port, timeout)
  local s = socket.tcp()
  s:settimeout(timeout or 2)
  local ok, err = s:connect(host, port)
  if not ok then
    s:close()
    return nil, err
  end
  s:setoption("tcp-nodelay", true)
  return s
end

--- Sends all of `data`; raises on failure.
function M.send_all(sock, data)
  local i = 1
  while i <= #data do
    local last, err, partial = sock:send(data, i)
    if not last then
      if err == "timeout" and partial then
        i = partial + 1
      else
        error("send failed: " .. tostring(err), 2)
      end
    else
      i = last + 1
    end
  end
end

-- Receives exactly n bytes within the total time left before `deadline`.
local function recv_exact(sock, n, deadline)
  local got = {}
  local have = 0
  while have < n do
    local left = deadline - socket.gettime()
    if left <= 0 then return nil, "timeout" end
    sock:settimeout(left)
    local data, err, partial = sock:receive(n - have)
    data = data or partial
    if data and #data > 0 then
      got[#got + 1] = data
      have = have + #data
    end
    if err == "closed" then return nil, "closed" end
    if err and err ~= "timeout" then return nil, err end
  end
  return table.concat(got)
end

--- Reads one whole frame (16-byte header, then total_len bytes) within
-- `timeout` seconds (default 2). Returns the frame's bytes, or nil and
-- "closed" or "timeout".
function M.read_frame(sock, timeout)
  local deadline = socket.gettime() + (timeout or 2)
  local head, err = recv_exact(sock, 16, deadline)
  if not head then return nil, err end
  local total = string.unpack(">I4", head, 13)
  local body, err2 = recv_exact(sock, total, deadline)
  if not body then return nil, err2 end
  return head .. body
end

--- Waits up to `timeout` seconds for anything at all from `sock`. Returns
-- the bytes, or nil and "closed" or "timeout".
function M.read_any(sock, timeout)
  sock:settimeout(timeout)
  local data, err, partial = sock:receive(1)
  if data then return data end
  if partial and #partial > 0 then return partial end
  return nil, err
end

--- Sends one frame and reads one back.
function M.roundtrip(host, port, frame, timeout)
  local s, err = M.raw_connect(host, port)
  if not s then return nil, err end
  M.send_all(s, frame)
  local r, rerr = M.read_frame(s, timeout)
  s:close()
  return r, rerr
end

-- ---- the frame format -----------------------------------------------------------------------

M.FLAG_RESPONSE, M.FLAG_HEARTBEAT, M.FLAG_ONEWAY = 0x80, 0x40, 0x20

--- Parses a whole frame (README "Frame layout"). Returns a table:
-- magic, version, flags, response, heartbeat, oneway, compress, status,
-- serialize_byte, serialize, seq, total_len, path, method, meta (a map),
-- meta_order (keys in wire order), meta_block, payload_len_field,
-- payload_offset (1-based, in `bytes`), payload (every byte after the
-- payload length field, as the Go decoder takes it). Or nil, reason.
function M.parse_frame(bytes)
  if #bytes < 16 then return nil, "short header" end
  local f = {}
  f.magic, f.version, f.flags, f.serialize_byte, f.seq, f.total_len =
    string.unpack(">BBBBI8I4", bytes)
  f.response = f.flags & 0x80 ~= 0
  f.heartbeat = f.flags & 0x40 ~= 0
  f.oneway = f.flags & 0x20 ~= 0
  f.compress = (f.flags >> 2) & 7
  f.status = f.flags & 3
  f.serialize = f.serialize_byte >> 4
  if #bytes ~= 16 + f.total_len then
    return nil, string.format("frame is %d bytes, header says %d", #bytes, 16 + f.total_len)
  end
  local pos = 17
  local function section(what)
    if pos + 3 > #bytes then error(what .. " length past the end", 0) end
    local n = string.unpack(">I4", bytes, pos)
    pos = pos + 4
    if what ~= "payload" and pos + n - 1 > #bytes then error(what .. " past the end", 0) end
    return n
  end
  local ok, err = pcall(function()
    local n = section("path"); f.path = bytes:sub(pos, pos + n - 1); pos = pos + n
    n = section("method"); f.method = bytes:sub(pos, pos + n - 1); pos = pos + n
    n = section("metadata"); f.meta_block = bytes:sub(pos, pos + n - 1); pos = pos + n
    f.payload_len_field = section("payload")
    f.payload_offset = pos
    f.payload = bytes:sub(pos)
  end)
  if not ok then return nil, err end
  f.meta, f.meta_order = {}, {}
  local mb, mp = f.meta_block, 1
  while mp <= #mb do
    if mp + 3 > #mb then return nil, "metadata key length past the block" end
    local kl = string.unpack(">I4", mb, mp); mp = mp + 4
    if mp + kl - 1 > #mb then return nil, "metadata key past the block" end
    local k = mb:sub(mp, mp + kl - 1); mp = mp + kl
    if mp + 3 > #mb then return nil, "metadata value length past the block" end
    local vl = string.unpack(">I4", mb, mp); mp = mp + 4
    if mp + vl - 1 > #mb then return nil, "metadata value past the block" end
    f.meta[k] = mb:sub(mp, mp + vl - 1); mp = mp + vl
    f.meta_order[#f.meta_order + 1] = k
  end
  return f
end

--- Builds a frame. Fields (all optional): magic (8), version (0), flags
-- (raw byte) or response/heartbeat/oneway/compress/status, serialize (3,
-- the high nibble) or serialize_byte, seq (0), path (""), method (""),
-- meta (a list of {k, v} pairs, kept in order, or a map) or meta_block
-- (raw bytes), payload (""), payload_len (the length field, default
-- #payload), total_len (default: the true length).
function M.build_frame(t)
  local flags = t.flags
  if not flags then
    flags = (t.response and 0x80 or 0) | (t.heartbeat and 0x40 or 0) | (t.oneway and 0x20 or 0)
      | (((t.compress or 0) & 7) << 2) | ((t.status or 0) & 3)
  end
  local ser = t.serialize_byte or ((t.serialize or 3) << 4)
  local meta = t.meta_block
  if not meta then
    local parts = {}
    local m = t.meta or {}
    if #m > 0 or next(m) == nil then
      for _, kv in ipairs(m) do parts[#parts + 1] = string.pack(">s4s4", kv[1], kv[2]) end
    else
      local keys = {}
      for k in pairs(m) do keys[#keys + 1] = k end
      table.sort(keys)
      for _, k in ipairs(keys) do parts[#parts + 1] = string.pack(">s4s4", k, m[k]) end
    end
    meta = table.concat(parts)
  end
  local path, method, payload = t.path or "", t.method or "", t.payload or ""
  local body = string.pack(">s4s4s4", path, method, meta)
    .. string.pack(">I4", t.payload_len or #payload) .. payload
  return string.pack(">BBBBI8I4", t.magic or 8, t.version or 0, flags, ser, t.seq or 0,
    t.total_len or #body) .. body
end

--- gunzips `data` with the gzip(1) tool (test side only). Returns the
-- bytes, or nil and a reason.
function M.gunzip(data)
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "wb"))
  f:write(data)
  f:close()
  local p = io.popen("gzip -dc < " .. shell_quote(tmp) .. " 2>/dev/null", "r")
  local out = p:read("a")
  local ok = p:close()
  os.remove(tmp)
  if not ok then return nil, "gzip -dc failed" end
  return out
end

--- A gzip stream of `n` zero bytes, made with gzip(1).
function M.gzip_zeros(n)
  local p = assert(io.popen("head -c " .. math.tointeger(n) .. " /dev/zero | gzip -c", "r"))
  local out = p:read("a")
  p:close()
  return out
end

-- ---- helpers for in-process specs ---------------------------------------------

--- Runs the loop (sleeping 10 ms at a time) until pred() holds or
-- `seconds` (default 2) pass; returns whether it held.
function M.eventually(pred, seconds)
  local moonrpc = require "moonrpc"
  local deadline = moonrpc.now() + (seconds or 2) * 1000
  while not pred() do
    if moonrpc.now() > deadline then return false end
    moonrpc.sleep(0.01)
  end
  return true
end

--- The sorted addresses of a registry list or discovery's entries.
function M.addrs(list)
  local out = {}
  for _, e in ipairs(list or {}) do out[#out + 1] = e.addr end
  table.sort(out)
  return out
end

--- `count` servers that register themselves in `registry` (an object or
-- a URL) with a lease of `ttl` seconds, each serving Arith.Who, which
-- answers its index. Not listening yet: serve them when the spec needs.
-- Their close goes into `opened`, the spec's list of things to close.
function M.who_servers(registry, ttl, count, opened)
  local moonrpc = require "moonrpc"
  local servers = {}
  for i = 1, count do
    local s = moonrpc.server{ registry = registry, ttl = ttl }
    opened[#opened + 1] = function() s:close() end
    s:register("Arith", { Who = function() return i end })
    servers[i] = s
  end
  return servers
end

--- A TCP address with nobody listening on it (a server was there a moment ago).
function M.dead_port()
  local moonrpc = require "moonrpc"
  local s = moonrpc.server()
  s:register("X", { f = function() end })
  local addr = assert(s:serve("tcp", "127.0.0.1:0"))
  s:close()
  moonrpc.sleep(0.01)
  return addr
end

return M
