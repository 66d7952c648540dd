--- moonrpc.discovery: where the servers of a service are, as rpcx's
-- ServiceDiscovery gives them.
--
--     local d = moonrpc.peer2peer("tcp@127.0.0.1:8972")
--     local d = moonrpc.multiple_servers{
--       { addr = "tcp@127.0.0.1:8972", metadata = "weight=3" },
--       "tcp@127.0.0.1:8973",
--     }
--     d:update{ ... }   -- every xclient fed by d sees the new list
--
-- A server is `{ addr = "tcp@host:port", metadata = "k=v&..." }`; the
-- metadata is rpcx's URL query string (weight, group, state, latitude,
-- longitude, ...). One discovery may feed many xclients; each notices a
-- change by the discovery's `version`.
-- @module moonrpc.discovery

local M = {}

--- Parses rpcx metadata "weight=10&group=a" into a table.
function M.parse_meta(s)
  local t = {}
  for pair in (s or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    t[k] = v
  end
  return t
end

local Discovery = {}
Discovery.__index = Discovery
Discovery.__name = "moonrpc.discovery"
M.Discovery = Discovery

local function normalize(list, level)
  local out = {}
  for i, s in ipairs(list) do
    local addr, meta
    if type(s) == "string" then addr, meta = s, ""
    elseif type(s) == "table" then addr, meta = s.addr or s[1], s.metadata or s[2] or ""
    end
    if type(addr) ~= "string" or type(meta) ~= "string" then
      error("bad server entry #" .. i .. " (string or {addr=, metadata=} expected)", level + 1)
    end
    if not addr:find("@", 1, true) then addr = "tcp@" .. addr end
    out[#out + 1] = { addr = addr, metadata = meta, meta = M.parse_meta(meta) }
  end
  return out
end

local function new(list, level)
  return setmetatable({ servers = normalize(list, level + 1), version = 1 }, Discovery)
end

--- rpcx's NewPeer2PeerDiscovery: one fixed server.
function M.peer2peer(addr, metadata)
  if type(addr) ~= "string" then error("bad argument #1 to 'peer2peer' (address expected)", 2) end
  return new({ { addr = addr, metadata = metadata } }, 2)
end

--- rpcx's NewMultipleServersDiscovery: a list you can update.
function M.multiple_servers(list)
  if type(list) ~= "table" then error("bad argument #1 to 'multiple_servers' (table expected)", 2) end
  return new(list, 2)
end

--- Replaces the server list; xclients see it on their next call.
function Discovery:update(list)
  if type(list) ~= "table" then error("bad argument #1 to 'update' (table expected)", 2) end
  self.servers = normalize(list, 2)
  self.version = self.version + 1
end

--- The current list and its version.
function Discovery:get()
  return self.servers, self.version
end

function M.is(v)
  return getmetatable(v) == Discovery
end

return M
