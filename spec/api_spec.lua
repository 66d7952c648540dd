--- Spec for the Lua API's two error channels where a new user meets them
-- (lua/moonrpc.lua, lua/moonrpc/options.lua, xclient.lua, server.lua,
-- sched.lua): moonrpc.encode/decode fail with the same error values as
-- calls; a misspelled option raises; inform's entries say ok = false on
-- failure; a wait inside the user's own coroutine, resumed by moonrpc,
-- says what to do. Issue 14.

local moonrpc = require "moonrpc"
local S = require "support"

local function serve(handlers)
  local s = moonrpc.server()
  s:register("S", handlers)
  return s, assert(s:serve("tcp", "127.0.0.1:0"))
end

local function xclient(addrs, opts)
  return moonrpc.xclient("S", moonrpc.Failfast, moonrpc.RoundRobin,
                         moonrpc.multiple_servers(addrs), opts)
end

-- The message of what `fn` raised, which must point at this file (the
-- caller's line, not moonrpc's).
local function raised(fn)
  local ok, msg = pcall(fn)
  assert.is_false(ok)
  assert.matches("api_spec%.lua:%d+: ", msg)
  return msg
end

describe("moonrpc.encode and moonrpc.decode", function()
  it("fail with an error value, as calls do", function()
    local v, err = moonrpc.encode({ f = print })
    assert.is_nil(v)
    assert.is_true(moonrpc.is_error(err))
    assert.are.equal("EENCODE", err.code)
    assert.matches("cannot encode a function value at f", err.message)
    assert.matches("^EENCODE: ", tostring(err))

    v, err = moonrpc.decode("\xc1")
    assert.is_nil(v)
    assert.is_true(moonrpc.is_error(err))
    assert.are.equal("EDECODE", err.code)

    v, err = moonrpc.decode("{\"A\":", "json")
    assert.is_nil(v)
    assert.are.equal("EDECODE", err.code)
  end)

  it("still round-trip, nil included", function()
    assert.are.same({ A = 7 }, moonrpc.decode(moonrpc.encode({ A = 7 })))
    assert.are.same({ A = 7 }, moonrpc.decode(moonrpc.encode({ A = 7 }, "json"), "json"))
    local v, err = moonrpc.decode(moonrpc.encode(nil))
    assert.is_nil(v)
    assert.is_nil(err)
  end)
end)

describe("a misspelled option", function()
  it("raises in moonrpc.server{}", function()
    assert.matches("unknown option 'timeoutt' in moonrpc.server options",
      raised(function() moonrpc.server{ timeoutt = 1 } end))
    assert.matches("unknown option 'max_fram' in moonrpc.server options %(did you mean 'max_frame'%?%)",
      raised(function() moonrpc.server{ max_fram = 1024 } end))
  end)

  it("raises in xclient options and call options", function()
    local d = moonrpc.peer2peer("tcp@127.0.0.1:1")
    assert.matches("unknown option 'timeoutt' in xclient options %(did you mean 'timeout'%?%)",
      raised(function() moonrpc.xclient("S", moonrpc.Failfast, moonrpc.RandomSelect, d, { timeoutt = 1 }) end))
    local xc = moonrpc.xclient("S", moonrpc.Failfast, moonrpc.RandomSelect, d)
    for _, what in ipairs { "call", "go", "oneshot", "broadcast", "fork", "inform" } do
      assert.matches("unknown option 'timeoutt' in call options",
        raised(function() xc[what](xc, "M", {}, { timeoutt = 1 }) end))
    end
    xc:close()
  end)

  it("raises in s:add_registry{}", function()
    local s = moonrpc.server()
    assert.matches("unknown option 'max_entrys' in add_registry options %(did you mean 'max_entries'%?%)",
      raised(function() s:add_registry{ max_entrys = 10 } end))
    s:close()
  end)

  it("leaves every known option alone", function()
    local opts = { reuseport = false, ttl = 10, advertise = "tcp@127.0.0.1:1", idle_timeout = 60 }
    for k, v in pairs(moonrpc.limits) do opts[k] = v end
    moonrpc.server(opts):close()
    local s, addr = serve({ Echo = function(_, a) return a end })
    assert.is_truthy(s:add_registry{ max_entries = 10, max_watches = 10, max_ttl = 60 })
    local xo = {
      timeout = 2, serialize = "msgpack", compress = "gzip", retries = 1, backup_latency = 0.01,
      auth = "token", group = nil, breaker = { failures = 5, window = 1 }, pool = 1,
      latitude = 0, longitude = 0, ping_interval = 5, on_push = function() end,
      connect_timeout = 2, heartbeat = 10, heartbeat_timeout = 10,
    }
    for k, v in pairs(moonrpc.limits) do xo[k] = v end
    local xc = xclient({ addr }, xo)
    assert.are.equal("hi", (xc:call("Echo", "hi", { timeout = 2, metadata = { k = "v" },
      serialize = "msgpack", compress = "gzip", retries = 0, backup_latency = 0.01 })))
    xc:close()
    s:close()
  end)
end)

describe("xc:inform", function()
  it("gives ok = false with the error for each server that failed", function()
    local good, a = serve({ F = function() return 1 end })
    local bad, b = serve({ F = function() error("nope") end })
    local dead = S.dead_port()
    local xc = xclient({ a, b, dead }, { timeout = 2 })
    local by = {}
    for _, r in ipairs(xc:inform("F", {})) do by[r.address] = r end
    assert.is_true(by[a].ok)
    assert.are.equal(1, by[a].reply)
    assert.is_false(by[b].ok)
    assert.are.equal("EREMOTE", by[b].error.code)
    assert.are.equal("nope", by[b].error.message)
    assert.is_false(by[dead].ok)
    assert.are.equal("ECONNREFUSED", by[dead].error.code)
    xc:close()
    good:close()
    bad:close()
  end)
end)

describe("a wait inside the user's own coroutine", function()
  it("says to use moonrpc.spawn when moonrpc resumed it", function()
    local inner_s, inner = serve({ Echo = function(_, a) return a end })
    local inner_xc = xclient({ inner })
    local outer_s, outer = serve({
      Nested = function()
        return coroutine.wrap(function() return inner_xc:call("Echo", 1) end)()
      end,
    })
    local xc = xclient({ outer }, { timeout = 2 })
    local r, err = xc:call("Nested", {})
    assert.is_nil(r)
    assert.are.equal("EREMOTE", err.code)
    assert.matches("cannot wait inside your own coroutine", err.message)
    assert.matches("moonrpc.spawn", err.message, 1, true)
    -- the same coroutine resumed from the top level runs the loop: it works
    assert.are.equal(1, coroutine.wrap(function() return inner_xc:call("Echo", 1) end)())
    xc:close()
    inner_xc:close()
    outer_s:close()
    inner_s:close()
  end)
end)
