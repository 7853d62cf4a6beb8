-- Tests of the LuaJIT binding's client against a server on 127.0.0.1 that
-- echoes type 200 with its request id (the reference veltix 3.3.0 server
-- of tests/support/ref_server.py, or libveltix's c-examples/echo_server):
--
--   VELTIX_LIBRARY=target/release/libveltix.so \
--     luajit bindings/lua/tests/test_client.lua <port>
--
-- Prints "ok <name>" per test and "PASS <count>" at the end; any failure
-- raises an error (exit status 1).
local here = arg[0]:gsub("tests/test_client.lua$", "")
package.path = here .. "?.lua;" .. here .. "tests/?.lua;" .. package.path
local veltix = require("veltix")
local harness = require("harness")
local port = assert(tonumber(arg[1]), "usage: test_client.lua <port>")
local ECHO = 200
local C = veltix.constants

local test, dispatch_until = harness.test, harness.dispatch_until

local function connected()
  local client = veltix.client { host = "127.0.0.1", port = port }
  client:connect()
  return client
end

test("the library loads and reports the header's version", function()
  assert(veltix.load() == veltix.version)
end)

test("on_connect runs inside dispatch after connect_async", function()
  local client = veltix.client { host = "127.0.0.1", port = port }
  local connects = 0
  client:on_connect(function() connects = connects + 1 end)
  client:connect_async()
  dispatch_until({ client }, function() return connects == 1 end)
  assert(client:is_connected())
  client:close()
end)

test("a route receives the echo of every send", function()
  local client = connected()
  local got = {}
  client:route(ECHO, function(message)
    assert(message.type == ECHO)
    got[#got + 1] = message.payload
  end)
  for i = 1, 50 do client:send(ECHO, "message " .. i) end
  dispatch_until({ client }, function() return #got == 50 end)
  -- The reference server answers on a thread pool, in any order.
  local seen = {}
  for _, payload in ipairs(got) do seen[payload] = true end
  for i = 1, 50 do assert(seen["message " .. i], "missing message " .. i) end
  client:close()
end)

test("binary payloads keep every byte", function()
  local client = connected()
  local payload = "\0\1\2\255 in between \0"
  local reply = client:send_and_wait(ECHO, payload, 5000)
  assert(reply.payload == payload and reply.type == ECHO)
  client:close()
end)

test("a request's reply arrives in its callback, once", function()
  local client = connected()
  local replies = {}
  for i = 1, 10 do
    client:request(ECHO, "ask " .. i, 5000, function(err, reply)
      assert(err == nil, err)
      replies[#replies + 1] = reply.payload
    end)
  end
  dispatch_until({ client }, function() return #replies == 10 end)
  client:dispatch(50)
  assert(#replies == 10)
  client:close()
end)

test("a request that gets no reply fails with a timeout", function()
  local client = connected()
  local outcome
  -- 221: a type both servers leave unanswered.
  client:request(221, "nobody answers", 100, function(err, reply)
    outcome = { err = err, reply = reply }
  end)
  dispatch_until({ client }, function() return outcome ~= nil end)
  assert(outcome.reply == nil)
  assert(outcome.err:match("^VELTIX_ERR_TIMEOUT: "), outcome.err)
  client:close()
end)

test("ping measures a round trip", function()
  local client = connected()
  local rtt = client:ping(5000)
  assert(rtt > 0 and rtt < 5000, rtt)
  client:close()
end)

test("unroute sends the type to on_message, and an error in a callback reaches dispatch", function()
  local client = connected()
  client:route(ECHO, function() error("routed") end)
  client:unroute(ECHO)
  local seen
  client:on_message(function(message)
    seen = message.payload
    error("boom in on_message")
  end)
  client:send(ECHO, "to on_message")
  local ok, err = pcall(dispatch_until, { client }, function() return seen ~= nil end)
  assert(not ok and tostring(err):match("boom in on_message"), err)
  assert(seen == "to on_message")
  client:close()
end)

test("every callback runs on the Lua thread, inside dispatch", function()
  local ffi = require("ffi")
  if ffi.os == "Windows" then return end
  ffi.cdef("unsigned long pthread_self(void);")
  local lua_thread = ffi.C.pthread_self()
  local client = veltix.client { host = "127.0.0.1", port = port }
  local calls = 0
  local function here() calls = calls + 1; assert(ffi.C.pthread_self() == lua_thread) end
  client:on_connect(here)
  client:route(ECHO, here)
  client:on_disconnect(here)
  client:connect_async()
  dispatch_until({ client }, function() return calls == 1 end)
  client:send(ECHO, "x")
  client:request(ECHO, "y", 5000, here)
  dispatch_until({ client }, function() return calls == 3 end)
  client:disconnect()
  dispatch_until({ client }, function() return calls == 4 end)
  client:close()
end)

test("a refused connect_async ends in a permanent on_disconnect with its cause", function()
  local refused = veltix.client { host = "127.0.0.1", port = 1 }
  local state
  refused:on_disconnect(function(s) state = s end)
  refused:connect_async()
  dispatch_until({ refused }, function() return state ~= nil and state.permanent end)
  assert(state.reason == C.VELTIX_DISCONNECT_ERROR, state.reason)
  assert(state.detail:find("refused"), state.detail)
  refused:close()
end)

test("the event descriptor is a number to poll", function()
  local client = connected()
  assert(client:fd() >= 0)
  client:close()
end)

test("disconnect reports a manual, permanent end inside dispatch", function()
  local client = connected()
  local state
  client:on_disconnect(function(s) state = s end)
  client:disconnect()
  dispatch_until({ client }, function() return state ~= nil end)
  assert(state.permanent and state.reason == C.VELTIX_DISCONNECT_MANUAL)
  client:close()
end)

test("errors carry the status name and the library's detail", function()
  local refused = veltix.client { host = "127.0.0.1", port = 1, handshake_timeout_ms = 2000 }
  local ok, err = pcall(refused.connect, refused)
  assert(not ok and tostring(err):match("VELTIX_ERR_CONNECT_FAILED: .+"), err)
  refused:close()
  local client = veltix.client { host = "127.0.0.1", port = port }
  ok, err = pcall(client.send, client, ECHO, "not connected")
  assert(not ok and tostring(err):match("VELTIX_ERR_NOT_CONNECTED"), err)
  client:close()
end)

test("options reach the library's config, which checks them", function()
  local ok, err = pcall(veltix.client, { host = "127.0.0.1", port = port, buffer_size = 0 })
  assert(not ok and tostring(err):match("VELTIX_ERR_INVALID_ARGUMENT: .*buffer_size"), err)
  local client = veltix.client {
    host = "127.0.0.1", port = port, retry = 2, retry_delay_ms = 10, reply_spin_us = 0,
    liveness = { heartbeat_interval_ms = 200, heartbeat_timeout_ms = 5000 },
  }
  client:connect()
  assert(client:send_and_wait(ECHO, "configured", 5000).payload == "configured")
  client:close()
end)

test("stats count the traffic; retry, stop_retry and wait_until_closed drive the lifecycle", function()
  local client = connected()
  client:send_and_wait(ECHO, "counted", 5000)
  client:ping(5000)
  local stats = client:stats()
  assert(stats.frames_out >= 2 and stats.frames_in >= 2, stats.frames_in)
  assert(stats.bytes_in > 0 and stats.bytes_out > 0 and stats.last_rtt_ms > 0)
  assert(client:wait_until_closed(0) == false, "connected: not closed")
  client:disconnect()
  assert(client:wait_until_closed(5000) == true)
  -- A reconnection loop to a port that refuses, stopped by stop_retry.
  local refused = veltix.client { host = "127.0.0.1", port = 1, retry_delay_ms = 50 }
  local states = {}
  refused:on_disconnect(function(state) states[#states + 1] = state end)
  refused:retry(100)
  dispatch_until({ refused }, function() return #states >= 2 end)
  refused:stop_retry()
  dispatch_until({ refused }, function() return states[#states].permanent end)
  assert(states[1].permanent == false and states[#states].permanent == true)
  refused:close()
  client:close()
end)

test("close is idempotent, and a closed client refuses calls", function()
  local client = connected()
  client:close()
  client:close()
  local ok, err = pcall(client.send, client, ECHO, "x")
  assert(not ok and tostring(err):match("closed"), err)
end)

test("a client left to the collector is freed with its registrations", function()
  for _ = 1, 20 do
    local client = connected()
    client:route(ECHO, function() end)
    client:on_message(function() end)
  end
  collectgarbage()
  collectgarbage()
end)

harness.report()
