-- moonrpc.cli.util: what the subcommands of the `moonrpc` command share:
-- option parsing, exit with a message, finding the C tools, rendering
-- values. `here` and `root` are set by the command script.
local M = { here = ".", root = ".." }

function M.die(code, ...)
  io.stderr:write("moonrpc: ", ...)
  io.stderr:write("\n")
  os.exit(code)
end

-- Parses "--name value" options; returns options and positional args.
-- `short` maps one-letter options to long names ({ d = "data" }: -d X is
-- --data X).
function M.getopts(args, flags, short)
  local opts, pos, i = {}, {}, 1
  while i <= #args do
    local a = args[i]
    local name = a:match("^%-%-([%w-]+)$")
    local letter = a:match("^%-(%a)$")
    if letter then
      name = short and short[letter]
      if not name then M.die(2, "unknown option -", letter) end
    end
    if name and flags[name] == "value" then
      if not args[i + 1] then M.die(2, "option --", name, " needs a value") end
      opts[name] = args[i + 1]
      i = i + 2
    elseif name and flags[name] == "multi" then -- repeatable: a list
      if not args[i + 1] then M.die(2, "option --", name, " needs a value") end
      opts[name] = opts[name] or {}
      table.insert(opts[name], args[i + 1])
      i = i + 2
    elseif name and flags[name] == "flag" then
      opts[name] = true
      i = i + 1
    elseif name then
      M.die(2, "unknown option --", name)
    else
      pos[#pos + 1] = a
      i = i + 1
    end
  end
  return opts, pos
end

function M.find_exe(name)
  local candidates = {
    (os.getenv("MOONRPC_BUILD") or (M.root .. "/build")) .. "/" .. name,
    M.here .. "/" .. name,
  }
  for _, p in ipairs(candidates) do
    local f = io.open(p)
    if f then f:close(); return p end
  end
  return name -- on PATH
end

function M.exec(exe, args)
  local core = require "moonrpc.core"
  local _, _, msg = core.exec(exe, args)
  M.die(3, msg)
end

-- A string as a Lua literal that is safe on a terminal: valid UTF-8 text
-- stays as it is (but for quotes, backslashes and control bytes); a binary
-- string (not UTF-8) has every byte >= 0x80 written as \xHH. Control bytes
-- are \n, \r, \t or \xHH. It reads back (load) as the same bytes.
local ESC = { ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t", ['"'] = '\\"', ["\\"] = "\\\\" }
function M.quote(s)
  local pattern = utf8.len(s) and "[%c\"\\\127]" or "[%c\"\\\127-\255]"
  return '"' .. s:gsub(pattern, function(c)
    return ESC[c] or string.format("\\x%02x", c:byte())
  end) .. '"'
end

-- The reply made printable as JSON: every string that is not UTF-8 becomes
-- moonrpc.bin(s), which the JSON codec writes as base64, as Go writes a
-- []byte (text strings stay strings; JSON escapes their control bytes).
-- Returns a copy; `v` is not changed.
function M.json_safe(v, seen)
  local moonrpc = require "moonrpc"
  if type(v) == "string" then return utf8.len(v) and v or moonrpc.bin(v) end
  if type(v) ~= "table" or v == moonrpc.null or getmetatable(v) then return v end
  seen = seen or {}
  if seen[v] then return v end -- a cycle: the encoder reports it
  seen[v] = true
  local out = {}
  for k, x in pairs(v) do
    -- a binary key cannot be base64 (keys are strings): its escaped form
    if type(k) == "string" and not utf8.len(k) then k = M.quote(k):sub(2, -2) end
    out[k] = M.json_safe(x, seen)
  end
  seen[v] = nil
  return out
end

-- Renders a Lua value as a literal, nested tables indented; strings as
-- M.quote writes them.
function M.render(v, indent, seen)
  indent, seen = indent or "", seen or {}
  local moonrpc = require "moonrpc"
  if v == moonrpc.null then return "moonrpc.null" end
  if type(v) == "string" then return M.quote(v) end
  if type(v) ~= "table" then return tostring(v) end
  if seen[v] then return "<cycle>" end
  seen[v] = true
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  if #keys == 0 then return "{}" end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
    return type(a) < type(b)
  end)
  local inner, out = indent .. "  ", {}
  for _, k in ipairs(keys) do
    local key = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or ("[" .. M.render(k) .. "]")
    out[#out + 1] = inner .. key .. " = " .. M.render(v[k], inner, seen)
  end
  return "{\n" .. table.concat(out, ",\n") .. "\n" .. indent .. "}"
end

-- The text of -d DATA, as grpcurl reads it: "@-" or "@" is stdin,
-- "@FILE" the file's content, anything else the text itself. A file
-- that cannot be read is a usage error (exit 2).
function M.read_data(data)
  local name = data:match("^@(.*)$")
  if not name then return data end
  local text, err
  if name == "-" or name == "" then
    text = io.stdin:read("a")
    if not text then err = "cannot read stdin" end
  else
    local f
    f, err = io.open(name, "rb")
    if f then text = f:read("a"); f:close() end
  end
  if not text then M.die(2, "-d ", data, ": ", err) end
  return text
end

function M.parse_args(s)
  if s == nil then return nil end
  local moonrpc = require "moonrpc"
  local first = s:match("^%s*(.)")
  if first == "{" or first == "[" or first == "\"" then
    local v = moonrpc.decode(s, "json")
    if v ~= nil then return v end
  end
  local chunk, err = load("return " .. s, "=args", "t", { moonrpc = moonrpc, null = moonrpc.null })
  if not chunk then M.die(2, "cannot parse arguments: ", err) end
  local ok, v = pcall(chunk)
  if not ok then M.die(2, "cannot evaluate arguments: ", v) end
  return v
end

-- --ready-file PATH: a server command removes PATH when it starts (a file
-- left by an earlier run must not pass for this one), writes its address
-- there once it listens (and has registered), and removes it again when it
-- stops gracefully. The address is written to PATH.tmp and renamed, so a
-- reader never sees a partial file: `until [ -s PATH ]` or
-- `moonrpc wait PATH` waits for it.
function M.ready_start(path)
  if path then os.remove(path) end
end

function M.ready(path, addr)
  if not path then return end
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "w")
  if not f then M.die(3, "--ready-file: ", err) end
  f:write(addr, "\n")
  f:close()
  local ok, rerr = os.rename(tmp, path)
  if not ok then os.remove(tmp); M.die(3, "--ready-file: ", rerr) end
end

function M.ready_end(path)
  if path then os.remove(path) end
end

return M
