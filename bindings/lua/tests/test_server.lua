-- Tests of the LuaJIT binding's server, against the binding's own client
-- (in this process, both dispatched by this thread) and against the
-- reference veltix 3.3.0 client (tests/support/ref_client.py):
--
--   VELTIX_LIBRARY=target/release/libveltix.so \
--     luajit bindings/lua/tests/test_server.lua <python with veltix 3.3.0>
--
-- Prints "ok <name>" per test and "PASS <count>" at the end; any failure
-- raises an error (exit status 1).
local here = arg[0]:gsub("tests/test_server.lua$", "")
package.path = here .. "?.lua;" .. here .. "tests/?.lua;" .. package.path
local veltix = require("veltix")
local harness = require("harness")
local python = assert(arg[1], "usage: test_server.lua <python with veltix 3.3.0>")
local ECHO, ASK, ANSWER, BROADCAST_OUT = 200, 212, 213, 203
local C = veltix.constants

local test, dispatch_until = harness.test, harness.dispatch_until

-- A started server on a free port of 127.0.0.1 that echoes type 200.
local function echo_server()
  local server = veltix.server { host = "127.0.0.1", port = 0 }
  server:route(ECHO, function(peer, message)
    server:reply(peer, message, ECHO, message.payload)
  end)
  return server, server:start()
end

test("a server answers the binding's client, and sees it come and go", function()
  local server, port = echo_server()
  local joined, left
  server:on_connect(function(peer) joined = peer end)
  server:on_disconnect(function(peer, reason) left = { peer = peer, reason = reason } end)
  local client = veltix.client { host = "127.0.0.1", port = port }
  client:connect_async()
  dispatch_until({ server, client }, function() return joined ~= nil and client:is_connected() end)
  assert(#server:peers() == 1 and server:peers()[1] == joined)
  local reply
  client:request(ECHO, "hello", 5000, function(err, r) assert(not err, err); reply = r end)
  dispatch_until({ server, client }, function() return reply ~= nil end)
  assert(reply.payload == "hello" and reply.type == ECHO)
  client:close()
  dispatch_until({ server }, function() return left ~= nil end)
  assert(left.peer == joined and left.reason == C.VELTIX_DISCONNECT_PEER_CLOSED, left.reason)
  server:close()
end)

test("a server's request, broadcast, tags and close_client reach the binding's client", function()
  local server, port = echo_server()
  local peer
  server:on_connect(function(p) peer = p end)
  local client = veltix.client { host = "127.0.0.1", port = port }
  local got, ended = {}, nil
  client:route(ASK, function(message) client:reply(message, ANSWER, "answer:" .. message.payload) end)
  client:route(BROADCAST_OUT, function(message) got[#got + 1] = message.payload end)
  client:on_disconnect(function(state) ended = state end)
  client:connect()
  dispatch_until({ server, client }, function() return peer ~= nil end)
  local answer
  server:request(peer, ASK, "q", 5000, function(err, reply) assert(not err, err); answer = reply end)
  dispatch_until({ server, client }, function() return answer ~= nil end)
  assert(answer.type == ANSWER and answer.payload == "answer:q", answer.payload)
  assert(server:broadcast(BROADCAST_OUT, "to all") == 1)
  assert(server:broadcast(BROADCAST_OUT, "to nobody", { peer }) == 0)
  dispatch_until({ server, client }, function() return #got == 1 end)
  assert(got[1] == "to all")
  server:set_tag(peer, "room", "lobby")
  assert(#server:peers_with_tag("room", "lobby") == 1 and server:peers_with_tag("room", "lobby")[1] == peer)
  assert(#server:peers_with_tag("room", "hall") == 0 and #server:peers_with_tag("room") == 1)
  assert(server:get_tag(peer, "room") == "lobby")
  assert(server:add_tag(peer, "room", "hall") == false and server:get_tag(peer, "room") == "lobby")
  assert(server:add_tag(peer, "role", "player") == true)
  assert(server:remove_tag(peer, "room") == true and server:remove_tag(peer, "room") == false)
  assert(server:get_tag(peer, "room") == nil)
  local address, from_port = server:peer_address(peer)
  assert(address == "127.0.0.1" and from_port > 0, address)
  assert(server:client_count() == 1 and server:port() == port)
  assert(server:ping_client(peer, 5000) > 0)
  assert(server:peer_stats(peer).frames_in >= 1)
  server:close_client(peer)
  dispatch_until({ server, client }, function() return ended ~= nil end)
  assert(ended.reason == C.VELTIX_DISCONNECT_SERVER_CLOSED, ended.reason)
  client:close()
  server:close()
end)

test("the reference client gets answers, requests and broadcasts from a binding's server", function()
  local server, port = echo_server()
  local peer
  server:on_connect(function(p) peer = p end)
  local out = os.tmpname()
  -- Its stdin stays open 4 s, while this side asks and broadcasts.
  local commands = [[(echo '{"op": "connect"}'; echo '{"op": "request", "type": 200, "text": "hello"}'; sleep 4)]]
  assert(os.execute(("%s | %s %s --port %d > %s 2>&1 &"):format(commands, python,
    here .. "../../tests/support/ref_client.py", port, out)))
  dispatch_until({ server }, function() return peer ~= nil end)
  local answer = server:send_and_wait(peer, ASK, "waited", 5000)
  assert(answer.type == ANSWER and answer.payload == "answer:waited", answer.payload)
  local asked
  server:request(peer, ASK, "async", 5000, function(err, reply) assert(not err, err); asked = reply end)
  dispatch_until({ server }, function() return asked ~= nil end)
  assert(asked.payload == "answer:async")
  assert(server:broadcast(BROADCAST_OUT, "to python") == 1)
  local function log()
    local file = io.open(out)
    local text = file:read("*a")
    file:close()
    return text
  end
  dispatch_until({ server }, function()
    local text = log()
    return text:find('"text": "hello"', 1, true) and text:find('"text": "to python"', 1, true)
  end)
  assert(log():find('"op": "request", "reply": {"type": 200', 1, true), log())
  server:close()
  os.remove(out)
end)

-- Runs `ending(server)` on an echo server with one connected client, and
-- checks that the client was disconnected with reason MANUAL. Returns the
-- server, its port and the client.
local function ended_by(ending)
  local server, port = echo_server()
  local left
  server:on_disconnect(function(_, reason) left = reason end)
  local client = veltix.client { host = "127.0.0.1", port = port }
  client:connect()
  dispatch_until({ server, client }, function() return server:client_count() == 1 end)
  ending(server)
  dispatch_until({ server, client }, function() return left ~= nil and not client:is_connected() end)
  assert(left == C.VELTIX_DISCONNECT_MANUAL, left)
  return server, port, client
end

test("shutdown closes every connection with MANUAL, and start listens again", function()
  local server, _, client = ended_by(function(server) server:shutdown() end)
  client:close()
  -- Port 0 picks a port again.
  local again = veltix.client { host = "127.0.0.1", port = server:start() }
  again:connect()
  -- The server's route runs in this thread's dispatch: ask without blocking.
  local reply
  again:request(ECHO, "again", 5000, function(err, r) assert(not err, err); reply = r end)
  dispatch_until({ server, again }, function() return reply ~= nil end)
  assert(reply.payload == "again")
  again:close()
  server:close()
end)

test("drain closes the connections with MANUAL and stops listening", function()
  local server, port, client = ended_by(function(server) server:drain(0) end)
  local late = veltix.client { host = "127.0.0.1", port = port }
  local ok, err = pcall(late.connect, late)
  assert(not ok and tostring(err):match("VELTIX_ERR_CONNECT_FAILED"), err)
  late:close()
  client:close()
  server:close()
end)

test("the PROXY protocol's trust list reaches the config, which checks it", function()
  local ok, err = pcall(veltix.server, { port = 0, proxy_protocol_from = "not an address" })
  assert(not ok and tostring(err):match("VELTIX_ERR_INVALID_ARGUMENT: .*proxy_protocol_from"), err)
  local server = veltix.server { host = "127.0.0.1", port = 0, proxy_protocol_from = "10.0.0.0/8" }
  assert(server:start() > 0)
  server:close()
end)

test("io_threads reaches the config: two loops serve two clients and broadcast to both", function()
  local ok, err = pcall(veltix.server, { port = 0, io_threads = 257 })
  assert(not ok and tostring(err):match("VELTIX_ERR_INVALID_ARGUMENT: .*io_threads"), err)
  local server = veltix.server { host = "127.0.0.1", port = 0, io_threads = 2 }
  server:route(ECHO, function(peer, message) server:reply(peer, message, ECHO, message.payload) end)
  local port = server:start()
  local handles, clients, got, replies = { server }, {}, {}, 0
  for i = 1, 2 do
    clients[i] = veltix.client { host = "127.0.0.1", port = port }
    clients[i]:route(BROADCAST_OUT, function(message) got[#got + 1] = message.payload end)
    clients[i]:connect_async()
    handles[#handles + 1] = clients[i]
  end
  dispatch_until(handles, function()
    return #server:peers() == 2 and clients[1]:is_connected() and clients[2]:is_connected()
  end)
  for _, client in ipairs(clients) do
    client:request(ECHO, "hi", 5000, function(e, reply) assert(not e and reply.payload == "hi", e); replies = replies + 1 end)
  end
  assert(server:broadcast(BROADCAST_OUT, "to both") == 2)
  dispatch_until(handles, function() return #got == 2 and replies == 2 end)
  assert(got[1] == "to both" and got[2] == "to both")
  for _, client in ipairs(clients) do client:close() end
  server:close()
end)

test("cluster settings reach the config; an unreachable bus is reported and local sends go on", function()
  local ok, err = pcall(veltix.server, { port = 0, cluster_bus = "rediss://127.0.0.1:1" })
  assert(not ok and tostring(err):match("VELTIX_ERR_INVALID_ARGUMENT: .*cluster_bus"), err)
  -- Nothing listens on port 1: the first attempt fails.
  local server = veltix.server {
    host = "127.0.0.1", port = 0, cluster_bus = "redis://127.0.0.1:1", cluster_name = "lua",
    cluster_node_id = 42,
  }
  local states, peer = {}, nil
  server:on_cluster_state(function(connected) states[#states + 1] = connected end)
  server:on_connect(function(p) peer = p end)
  local port = server:start()
  local client = veltix.client { host = "127.0.0.1", port = port }
  local got
  client:on_message(function(message) got = message.payload end)
  client:connect()
  dispatch_until({ server, client }, function() return peer ~= nil and #states > 0 end)
  assert(states[1] == false and #states == 1)
  assert(math.floor(peer / 2 ^ 37) == 42, peer)
  local stats = server:cluster_stats()
  assert(stats.node_id == 42 and not stats.connected)
  server:set_tag(peer, "room", "red")
  assert(server:send_to_tag("room", "red", 220, "to the room") == 1)
  assert(server:send_to_tag("room", "blue", 220, "nobody") == 0)
  dispatch_until({ server, client }, function() return got ~= nil end)
  assert(got == "to the room")
  local nodes, total = server:cluster_nodes()
  assert(#nodes == 1 and nodes[1].node_id == 42 and nodes[1].clients == 1 and total == 1)
  assert(server:cluster_stats().dropped == stats.dropped + 2, "the tag sends could not cross")
  client:close()
  server:close()
end)

harness.report()
