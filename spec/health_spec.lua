-- spec/health_spec.lua: moonrpc.health, the breaker and reconnect backoff
-- an xclient keeps per server. Time is the loop's clock (moonrpc.now), so
-- the checks sleep for real, in steps well above the loop's resolution.

local moonrpc = require "moonrpc"
local health = require "moonrpc.health"

local A, B = "tcp@127.0.0.1:1", "tcp@127.0.0.1:2"

describe("reconnect backoff", function()
  it("marks an unreachable server down for 0.1 s, doubling up to 5 s, and clears on success", function()
    local h = health.new()
    assert.are.equal("ok", h:status(A, moonrpc.now()))
    h:failure(A, true)
    assert.are.equal("down", h:status(A, moonrpc.now()))
    assert.are.equal("ok", h:status(B, moonrpc.now()), "other servers are not affected")
    moonrpc.sleep(0.15)
    assert.are.equal("ok", h:status(A, moonrpc.now()))
    h:failure(A, true) -- second failure: 0.2 s
    moonrpc.sleep(0.15)
    assert.are.equal("down", h:status(A, moonrpc.now()))
    moonrpc.sleep(0.1)
    assert.are.equal("ok", h:status(A, moonrpc.now()))
    for _ = 1, 10 do h:failure(A, true) end -- capped at 5 s
    local s = h.servers[A]
    assert.are.equal(5000, s.backoff)
    h:success(A)
    assert.are.equal("ok", h:status(A, moonrpc.now()))
    assert.is_nil(h.servers[A].backoff)
  end)

  it("does not back off after a timeout (the server answered the connect)", function()
    local h = health.new()
    h:failure(A, false)
    assert.are.equal("ok", h:status(A, moonrpc.now()))
  end)
end)

describe("circuit breaker", function()
  it("opens after N consecutive failures, lets one trial through after the window", function()
    local h = health.new({ failures = 3, window = 0.1 })
    h:failure(A, false); h:failure(A, false)
    assert.are.equal("ok", h:status(A, moonrpc.now()))
    h:success(A) -- a success resets the count
    h:failure(A, false); h:failure(A, false)
    assert.are.equal("ok", h:status(A, moonrpc.now()))
    h:failure(A, false)
    assert.are.equal("open", h:status(A, moonrpc.now()))
    moonrpc.sleep(0.15)
    assert.are.equal("ok", h:status(A, moonrpc.now()), "half-open: the trial")
    assert.are.equal("open", h:status(A, moonrpc.now()), "only one trial at a time")
    h:failure(A, false) -- the trial failed: open for another window
    assert.are.equal("open", h:status(A, moonrpc.now()))
    moonrpc.sleep(0.15)
    assert.are.equal("ok", h:status(A, moonrpc.now()))
    h:success(A) -- the trial succeeded: closed
    assert.are.equal("ok", h:status(A, moonrpc.now()))
    assert.are.equal("ok", h:status(A, moonrpc.now()))
  end)

  it("rejects a malformed breaker option", function()
    assert.has_error(function() health.new({ failures = 0, window = 1 }) end)
    assert.has_error(function() health.new({ failures = 2 }) end)
  end)
end)
