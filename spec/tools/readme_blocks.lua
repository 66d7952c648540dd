-- spec/tools/readme_blocks.lua README.md: runs the README's shell blocks
-- that start servers in the background (a line ending in `&`), as written,
-- and checks what they print.
--
-- Each block runs as `bash -e` from the source tree, in a session of its
-- own under `timeout`, so a block that hangs is stopped and whatever it
-- left running (a server it did not kill) is killed by process group
-- afterwards. A block passes when it exits 0 and its stdout shows, in
-- order, the lines the README shows as its output: the `# ...` lines right
-- under a command (a blank line or a command ends them; `# ...` and `#`
-- stand for anything). What varies from run to run is normalised first:
-- worker pids and which of the two instances served a call. A block that
-- runs curl is skipped, saying so, when curl is not installed.
-- Exit status: 0 all passed (or skipped), 1 a block failed.

local readme = arg[1] or "README.md"
local BLOCK_TIMEOUT = 120 -- seconds; the longest block (the bench sizes) takes ~15

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- The ```sh blocks that start a server in the background, with the line
-- where each starts.
local function blocks(text)
  local out, cur, n = {}, nil, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if cur then
      if line:match("^```") then
        if cur.background then out[#out + 1] = cur end
        cur = nil
      else
        cur.lines[#cur.lines + 1] = line
        local code = line:gsub("%s+#.*$", "")
        if not line:match("^%s*#") and code:match("&%s*$") then cur.background = true end
        if line:match("^%s*curl%s") then cur.curl = true end
      end
    elseif line:match("^```sh%s*$") then
      cur = { line = n, lines = {} }
    end
  end
  return out
end

-- The output lines the README shows for a block.
local function expected(lines)
  local exp, after_cmd = {}, false
  for _, line in ipairs(lines) do
    if line:match("^%s*$") then
      after_cmd = false
    elseif line:match("^#") then
      if after_cmd then
        local shown = line:gsub("^# ?", "")
        if shown ~= "" and shown ~= "..." then exp[#exp + 1] = shown end
      end
    else
      after_cmd = true
    end
  end
  return exp
end

local function normalise(s)
  s = s:gsub("\r", ""):gsub("%s+$", "")
  s = s:gsub("pids [%d ]+", "pids N")
  s = s:gsub("127%.0%.0%.1%%3A897[23]", "127.0.0.1%%3A897x")
  return s
end

-- Are the shown lines, normalised, a subsequence of the output's lines?
local function shows(out, exp)
  local got = {}
  for line in (out .. "\n"):gmatch("([^\n]*)\n") do got[#got + 1] = normalise(line) end
  local i = 1
  for _, want in ipairs(exp) do
    want = normalise(want)
    while i <= #got and got[i] ~= want do i = i + 1 end
    if i > #got then return false, want end
    i = i + 1
  end
  return true
end

local function group_alive(pgid)
  -- /bin/kill: sh's builtin may not take a negative pid (a group).
  return os.execute("/bin/kill -0 -- -" .. pgid .. " 2>/dev/null") == true
end

-- Stops what a block left running. A block's last `kill` only sends
-- SIGTERM, so its servers get 5 s to drain and exit; whatever is still
-- there then is a leftover: TERM, up to 5 s more, then KILL. Returns true
-- when there was a leftover.
local function wait_group(pgid, tenths)
  for _ = 1, tenths do
    if not group_alive(pgid) then return true end
    os.execute("sleep 0.1")
  end
  return not group_alive(pgid)
end

local function reap(pgid)
  if not pgid or wait_group(pgid, 50) then return false end
  os.execute("/bin/kill -TERM -- -" .. pgid .. " 2>/dev/null")
  if not wait_group(pgid, 50) then os.execute("/bin/kill -KILL -- -" .. pgid .. " 2>/dev/null") end
  return true
end

local text = assert(read(readme), "cannot read " .. readme)
local have_curl = os.execute("command -v curl >/dev/null 2>&1") == true
local tmp = os.tmpname()
local failed, ran = 0, 0
for _, b in ipairs(blocks(text)) do
  local name = readme .. ":" .. b.line
  if b.curl and not have_curl then
    print(("skipped %s: it runs curl, which is not installed (apt-get install curl)"):format(name))
  else
    local script, pidfile, out, err = tmp .. ".sh", tmp .. ".pid", tmp .. ".out", tmp .. ".err"
    local f = assert(io.open(script, "w"))
    f:write("echo $$ > ", sh_quote(pidfile), "\n", table.concat(b.lines, "\n"), "\n")
    f:close()
    os.remove(pidfile)
    local t0 = os.time()
    local ok, how, code = os.execute(("timeout -k 5 %d setsid bash -e %s > %s 2> %s")
      :format(BLOCK_TIMEOUT, sh_quote(script), sh_quote(out), sh_quote(err)))
    local pgid = tonumber((read(pidfile) or ""):match("%d+"))
    local leftovers = reap(pgid)
    local stdout, stderr = read(out) or "", read(err) or ""
    local good, missing = shows(stdout, expected(b.lines))
    local why
    if code == 124 then why = "timed out after " .. BLOCK_TIMEOUT .. " s"
    elseif not ok then why = "exited " .. tostring(code)
    elseif not good then why = "its output lacks the line the README shows: " .. missing end
    ran = ran + 1
    if why then
      failed = failed + 1
      print(("FAIL %s: %s\n--- block:\n%s\n--- stdout:\n%s\n--- stderr:\n%s")
        :format(name, why, table.concat(b.lines, "\n"), stdout, stderr))
    else
      print(("ok   %s (%d s%s)"):format(name, os.time() - t0,
        leftovers and "; left servers running, killed" or ""))
    end
    for _, p in ipairs { script, pidfile, out, err } do os.remove(p) end
  end
end
os.remove(tmp)
print(("%d blocks run, %d failed"):format(ran, failed))
os.exit(failed == 0 and ran > 0 and 0 or 1)
