-- layers.lua: checks that the code's dependencies point one way (issue 9).
--
--   lua5.4 spec/tools/layers.lua SRC_ROOT OBJ_DIR [SRC_ROOT OBJ_DIR ...]
--
-- For each pair, SRC_ROOT is a source folder (core/src, lua/src) and OBJ_DIR
-- the folder where CMake put its objects (SRC_ROOT's files as FILE.c.o under
-- the same relative paths). The objects are listed from the sources, so a
-- stale object of a removed file is never read. From `nm` it learns which
-- file defines each symbol and which files use it, and fails when:
--   * two or more files call each other, directly or round a circle;
--   * under core/src, two top-level folders (a subsystem, subfolders counted
--     as part of it) depend on each other, directly or round a circle;
--   * a file includes another folder's header other than that folder's one
--     internal header (core/src/F/F.h, core/src/registry/etcd/etcd.h ...);
--   * anything under core/ includes a Lua header.
-- Prints one line per finding and a closing "N passed, N failed" line.

local failed, passed = 0, 0
local function fail(msg) failed = failed + 1; print("not ok: " .. msg) end
local function ok(msg) passed = passed + 1; print("ok: " .. msg) end

local function lines(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

local function sources(root, ext)
  return lines("cd '" .. root .. "' && find . -name '*." .. ext .. "' | sed 's|^\\./||' | sort")
end

-- Tarjan's strongly connected components over graph[node] = {node = true}.
local function circles(nodes, graph)
  local index, low, stack, on, out, n = {}, {}, {}, {}, {}, 0
  local function visit(v)
    n = n + 1; index[v], low[v] = n, n
    stack[#stack + 1] = v; on[v] = true
    for w in pairs(graph[v] or {}) do
      if not index[w] then visit(w); low[v] = math.min(low[v], low[w])
      elseif on[w] then low[v] = math.min(low[v], index[w]) end
    end
    if low[v] == index[v] then
      local comp = {}
      repeat
        local w = table.remove(stack); on[w] = nil; comp[#comp + 1] = w
      until w == v
      if #comp > 1 then table.sort(comp); out[#out + 1] = comp end
    end
  end
  for _, v in ipairs(nodes) do if not index[v] then visit(v) end end
  return out
end

local function check_calls(root, objdir)
  local files, defs, uses = sources(root, "c"), {}, {}
  for _, f in ipairs(files) do
    local obj = objdir .. "/" .. f .. ".o"
    local fh = io.open(obj)
    if not fh then fail(obj .. " is missing (build first)") return end
    fh:close()
    uses[f] = {}
    for _, l in ipairs(lines("nm '" .. obj .. "'")) do
      local kind, sym = l:match("^%x*%s+(%a)%s+(%S+)$")
      if kind and kind:match("[TDBR]") then defs[sym] = f
      elseif kind == "U" then uses[f][#uses[f] + 1] = sym end
    end
  end
  local graph, why = {}, {}
  for f, syms in pairs(uses) do
    graph[f] = {}
    for _, s in ipairs(syms) do
      local d = defs[s]
      if d and d ~= f then
        graph[f][d] = true
        why[f .. ">" .. d] = why[f .. ">" .. d] or s
      end
    end
  end
  local bad = circles(files, graph)
  for _, comp in ipairs(bad) do
    local edges = {}
    for _, a in ipairs(comp) do
      for _, b in ipairs(comp) do
        if graph[a][b] then edges[#edges + 1] = a .. " -> " .. b .. " (" .. why[a .. ">" .. b] .. ")" end
      end
    end
    fail(root .. ": files call each other: " .. table.concat(edges, ", "))
  end
  if #bad == 0 then ok(root .. ": " .. #files .. " files, calls point one way") end
  if root:match("core/src$") then
    local top, fgraph, names = {}, {}, {}
    for _, f in ipairs(files) do
      local d = f:match("^([^/]+)/") or "."
      top[f] = d
      if not fgraph[d] then fgraph[d] = {}; names[#names + 1] = d end
    end
    for a, outs in pairs(graph) do
      for b in pairs(outs) do
        if top[a] ~= top[b] then fgraph[top[a]][top[b]] = true end
      end
    end
    table.sort(names)
    local fbad = circles(names, fgraph)
    for _, comp in ipairs(fbad) do fail(root .. ": subsystems depend on each other: " .. table.concat(comp, " ")) end
    if #fbad == 0 then ok(root .. ": " .. #names .. " subsystems, dependencies point one way") end
  end
end

-- The one header a folder offers the others: F/F.h, or for a backend folder
-- registry/etcd, registry/etcd/etcd.h.
local function check_includes(root)
  local bad = 0
  for _, ext in ipairs({ "c", "h" }) do
    for _, f in ipairs(sources(root, ext)) do
      local dir = f:match("^(.*)/[^/]+$") or ""
      local fh = assert(io.open(root .. "/" .. f))
      local n = 0
      for l in fh:lines() do
        n = n + 1
        local inc = l:match('^%s*#%s*include%s*"([^"]+)"')
        local sys = l:match("^%s*#%s*include%s*[<\"]([^>\"]+)[>\"]")
        if sys and (sys:match("^lua%.h") or sys:match("^lauxlib%.h") or sys:match("^lualib%.h"))
           and root:match("^core") then
          bad = bad + 1; fail(root .. "/" .. f .. ":" .. n .. " includes a Lua header")
        end
        if inc and inc:find("/") and not inc:match("^moonrpc/") then
          local idir, base = inc:match("^(.*)/([^/]+)%.h$")
          local own = idir and idir:match("([^/]+)$")
          if idir ~= dir and not (idir and base == own) then
            bad = bad + 1
            fail(root .. "/" .. f .. ":" .. n .. ' includes "' .. inc .. '", not ' .. (idir or "?") ..
              "'s one internal header")
          end
        end
      end
      fh:close()
    end
  end
  if bad == 0 then ok(root .. ": folders include only each other's one internal header") end
end

if #arg < 2 or #arg % 2 ~= 0 then
  io.stderr:write("usage: layers.lua SRC_ROOT OBJ_DIR [SRC_ROOT OBJ_DIR ...]\n")
  os.exit(2)
end
for i = 1, #arg, 2 do
  check_calls(arg[i], arg[i + 1])
  check_includes(arg[i])
end
print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)
