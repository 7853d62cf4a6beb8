--- LuaJIT binding of libveltix: a Veltix client on the LuaJIT FFI.
--
-- The client runs in dispatch mode: every callback runs on the Lua thread,
-- inside `client:dispatch()`, never on a library thread (LuaJIT must not be
-- entered from another thread). Drive `dispatch` from your loop, or poll
-- `client:fd()` and dispatch when it is readable.
--
--   local veltix = require "veltix"
--   local client = veltix.client { host = "127.0.0.1", port = 8080 }
--   client:on_message(function(message) print(message.type, message.payload) end)
--   client:connect()
--   client:send(200, "hello")
--   client:dispatch(100)
--   client:close()
--
-- Errors raise a Lua error whose message is the status name and the
-- library's detail, e.g. "VELTIX_ERR_TIMEOUT: no reply to request 3 ...".
local ffi = require("ffi")
local cdef = require("veltix.cdef")

ffi.cdef((cdef.declarations:gsub("VELTIX_SOCKET_T", ffi.os == "Windows" and "uintptr_t" or "int")))

local veltix = { constants = cdef.constants, version = cdef.constants.VELTIX_VERSION_STRING }
local C = cdef.constants

-- The library, loaded on first use: `veltix.load(path)`, else the file
-- named by VELTIX_LIBRARY, else "veltix" on the system's search path.
local lib

--- Loads libveltix from `path` (optional). Returns the version it reports.
function veltix.load(path)
  lib = ffi.load(path or os.getenv("VELTIX_LIBRARY") or "veltix")
  return ffi.string(lib.veltix_version())
end

local function library()
  if not lib then veltix.load() end
  return lib
end

local STATUS_NAMES = {}
for name, value in pairs(C) do
  if name:match("^VELTIX_ERR_") or name == "VELTIX_OK" then STATUS_NAMES[value] = name end
end

-- Raises the error of a failed call: its status name and the detail.
local function check(status)
  if status ~= C.VELTIX_OK then
    local detail = ffi.string(library().veltix_last_error())
    error((STATUS_NAMES[status] or tostring(status)) .. ": " .. detail, 3)
  end
end

-- Callbacks. One C callback per kind, made once: each registration is a
-- number in `user_data` naming its Lua function here, released by the
-- library's `free_user_data` (LuaJIT has a few hundred callback slots, and
-- an anchored closure per registration would leak them).
local handlers, next_handler = {}, 0

local function register(fn)
  next_handler = next_handler + 1
  handlers[next_handler] = fn
  return ffi.cast("void *", next_handler), next_handler
end

local function handler_of(user_data)
  return handlers[tonumber(ffi.cast("intptr_t", user_data))]
end

-- An error raised in a callback must not unwind through the library's C
-- frames: it is kept and raised again when `dispatch` returns.
local pending_error

local function call(fn, ...)
  local ok, err = pcall(fn, ...)
  if not ok and not pending_error then pending_error = err end
end

local function message_of(message)
  local length = ffi.new("size_t[1]")
  local content = library().veltix_message_content(message, length)
  return {
    type = library().veltix_message_type(message),
    request_id = library().veltix_message_request_id(message),
    payload = ffi.string(content, length[0]),
  }
end

local trampolines

-- A request's reply (or failure) to its function, whose registration ends.
local function deliver_reply(user_data, status, reply, detail)
  local id = tonumber(ffi.cast("intptr_t", user_data))
  local fn = handlers[id]
  handlers[id] = nil
  if not fn then return end
  if status == C.VELTIX_OK then
    call(fn, nil, message_of(reply))
  else
    local text = detail ~= nil and ffi.string(detail) or ""
    call(fn, (STATUS_NAMES[status] or tostring(status)) .. ": " .. text)
  end
end

local function make_trampolines()
  trampolines = {
    free = ffi.cast("veltix_free_fn", function(user_data)
      handlers[tonumber(ffi.cast("intptr_t", user_data))] = nil
    end),
    -- The message is the library's only during the call: `reply` may use
    -- it then, and the table keeps a copy of its fields.
    message = ffi.cast("veltix_message_fn", function(user_data, _, message)
      local fn = handler_of(user_data)
      if fn then
        local copy = message_of(message)
        copy.borrowed = message
        call(fn, copy)
        copy.borrowed = nil
      end
    end),
    connect = ffi.cast("veltix_connect_fn", function(user_data)
      local fn = handler_of(user_data)
      if fn then call(fn) end
    end),
    disconnect = ffi.cast("veltix_disconnect_fn", function(user_data, _, state)
      local fn = handler_of(user_data)
      if fn then
        call(fn, {
          permanent = state.permanent,
          attempt = state.attempt,
          retry_max = state.retry_max,
          reason = state.reason,
          detail = ffi.string(library().veltix_last_error()),
        })
      end
    end),
    -- Called exactly once per request: its registration ends here.
    reply = ffi.cast("veltix_reply_fn", function(user_data, _, status, reply, detail)
      deliver_reply(user_data, status, reply, detail)
    end),
    server_message = ffi.cast("veltix_server_message_fn", function(user_data, _, peer, message)
      local fn = handler_of(user_data)
      if fn then
        local copy = message_of(message)
        copy.borrowed = message
        call(fn, tonumber(peer), copy)
        copy.borrowed = nil
      end
    end),
    server_connect = ffi.cast("veltix_server_connect_fn", function(user_data, _, peer)
      local fn = handler_of(user_data)
      if fn then call(fn, tonumber(peer)) end
    end),
    server_disconnect = ffi.cast("veltix_server_disconnect_fn", function(user_data, _, peer, reason)
      local fn = handler_of(user_data)
      if fn then call(fn, tonumber(peer), reason) end
    end),
    cluster_state = ffi.cast("veltix_cluster_state_fn", function(user_data, _, connected)
      local fn = handler_of(user_data)
      if fn then call(fn, connected) end
    end),
    server_reply = ffi.cast("veltix_server_reply_fn", function(user_data, _, _, status, reply, detail)
      deliver_reply(user_data, status, reply, detail)
    end),
  }
end

local Client = {}
Client.__index = Client
local Server = {}
Server.__index = Server

-- The config fields a Lua table may set, by their C names.
local CLIENT_FIELDS = {
  "port", "buffer_size", "max_message_size", "handshake_timeout_ms", "retry", "retry_delay_ms",
  "retry_delay_max_ms", "send_timeout_ms", "max_queued_messages", "max_queued_bytes",
  "reply_spin_us",
}
local SERVER_FIELDS = {
  "port", "buffer_size", "max_connection", "max_message_size", "handshake_timeout_ms",
  "max_outbound_bytes", "max_queued_messages", "max_queued_bytes", "max_memory_bytes",
  "idle_timeout_ms", "reply_spin_us", "cluster_node_id", "io_threads",
}
-- The string fields a server's options may set (copied by _new).
local SERVER_STRINGS = { "proxy_protocol_from", "cluster_bus", "cluster_name" }

-- A handle of `kind` ("client" or "server") made from `options`: its
-- config (`veltix_<kind>_config_t`) holds the defaults, then the `fields`
-- and `liveness` of `options`, `options.host` in `host_field`, and
-- dispatch mode, which is forced (callbacks only on this thread).
local function new_handle(kind, class, fields, host_field, options, strings)
  options = options or {}
  local L = library()
  if not trampolines then make_trampolines() end
  local config = ffi.new("veltix_" .. kind .. "_config_t")
  check(L["veltix_" .. kind .. "_config_init"](config, ffi.sizeof(config)))
  -- Kept alive until the library has copied it.
  local host = options.host and ffi.new("char[?]", #options.host + 1, options.host)
  if host then config[host_field] = host end
  -- Each kept alive until the library has copied it.
  local kept = {}
  for _, field in ipairs(strings or {}) do
    local text = options[field]
    if text then
      kept[field] = ffi.new("char[?]", #text + 1, text)
      config[field] = kept[field]
    end
  end
  for _, field in ipairs(fields) do
    if options[field] ~= nil then config[field] = options[field] end
  end
  for key, value in pairs(options.liveness or {}) do config.liveness[key] = value end
  config.max_workers = 0
  local out = ffi.new("veltix_" .. kind .. "_t *[1]")
  check(L["veltix_" .. kind .. "_new"](config, out))
  return setmetatable({ handle = ffi.gc(out[0], L["veltix_" .. kind .. "_free"]) }, class)
end

--- A client of the server at `options.host` (default "127.0.0.1") and
-- `options.port` (default 8080). Other options: buffer_size,
-- max_message_size, handshake_timeout_ms, retry, retry_delay_ms,
-- retry_delay_max_ms, send_timeout_ms, max_queued_messages,
-- max_queued_bytes, reply_spin_us, and liveness = { heartbeat_interval_ms,
-- heartbeat_timeout_ms, keepalive_idle_s, keepalive_interval_s,
-- keepalive_count }. It is freed by `close()`, or when collected.
function veltix.client(options)
  return new_handle("client", Client, CLIENT_FIELDS, "server_addr", options)
end

local function live(self)
  return self.handle or error("it is closed: close() freed it", 3)
end

-- Sets (or with `fn` nil, removes) the callback that `setter` registers.
local function set_callback(self, setter, trampoline, fn)
  local L = library()
  if fn == nil then
    check(L[setter](live(self), nil, nil, nil))
  else
    check(L[setter](live(self), trampoline, (register(fn)), trampolines.free))
  end
end

--- Calls `fn(message)` for every message no route takes; nil removes it.
-- `message` is a table: `type`, `request_id` and `payload` (a string).
function Client:on_message(fn)
  set_callback(self, "veltix_client_on_recv", trampolines.message, fn)
end

--- Calls `fn()` once each connection completes its handshake.
function Client:on_connect(fn)
  set_callback(self, "veltix_client_on_connect", trampolines.connect, fn)
end

--- Calls `fn(state)` when a connection ends or an attempt fails: `state`
-- has `permanent`, `attempt`, `retry_max`, `reason` (a
-- VELTIX_DISCONNECT_* constant) and `detail`.
function Client:on_disconnect(fn)
  set_callback(self, "veltix_client_on_disconnect", trampolines.disconnect, fn)
end

--- Sends messages of `type_code` to `fn(message)` instead of on_message.
function Client:route(type_code, fn)
  local user_data = register(fn)
  check(library().veltix_client_route(live(self), type_code, trampolines.message, user_data,
    trampolines.free))
end

--- Connects and waits for the handshake (within handshake_timeout_ms).
function Client:connect()
  check(library().veltix_client_connect(live(self)))
end

--- Starts connecting and returns at once: on_connect or on_disconnect
-- follows, inside a later `dispatch`.
function Client:connect_async()
  check(library().veltix_client_connect_async(live(self)))
end

--- Sends `payload` (a string) as a message of `type_code`.
function Client:send(type_code, payload)
  payload = payload or ""
  check(library().veltix_client_send(live(self), type_code, payload, #payload))
end

--- Replies to `message` with `payload`, inside the callback that received
-- it (the reply carries its request id).
function Client:reply(message, type_code, payload)
  payload = payload or ""
  local to = message.borrowed or error("reply inside the callback that received the message", 2)
  check(library().veltix_client_reply(live(self), to, type_code, payload, #payload))
end

-- Registers `fn` for the one outcome of a request that `send(user_data)`
-- makes; a request that fails to leave drops it.
local function request_with(fn, send)
  local user_data, id = register(fn)
  local status = send(user_data)
  if status ~= C.VELTIX_OK then handlers[id] = nil end
  check(status)
end

--- Sends a request and calls `fn(err, reply)` once, inside a later
-- `dispatch`: with the reply, or with the error (a timeout after
-- `timeout_ms`, or the connection's end) and no reply.
function Client:request(type_code, payload, timeout_ms, fn)
  payload = payload or ""
  request_with(fn, function(user_data)
    return library().veltix_client_request(live(self), type_code, payload, #payload, timeout_ms,
      trampolines.reply, user_data)
  end)
end

-- The reply that `wait(out)` stores in `out`, as a message table.
local function waited_reply(wait)
  local out = ffi.new("veltix_message_t *[1]")
  check(wait(out))
  local reply = message_of(out[0])
  library().veltix_message_free(out[0])
  return reply
end

--- Sends a request and waits for its reply (a message table), at most
-- `timeout_ms`. Messages that arrive meanwhile wait for `dispatch`.
function Client:send_and_wait(type_code, payload, timeout_ms)
  payload = payload or ""
  return waited_reply(function(out)
    return library().veltix_client_send_and_wait(live(self), type_code, payload, #payload,
      timeout_ms, out)
  end)
end

--- Pings the server; the round trip in milliseconds.
function Client:ping(timeout_ms)
  local rtt = ffi.new("double[1]")
  check(library().veltix_client_ping(live(self), timeout_ms, rtt))
  return rtt[0]
end

--- Whether the handshake is done and the connection open.
function Client:is_connected()
  return library().veltix_client_is_connected(live(self))
end

-- The counters `fill(stats)` writes, as a table.
local function stats_of(fill)
  local stats = ffi.new("veltix_stats_t")
  stats.struct_size = ffi.sizeof(stats)
  check(fill(stats))
  return {
    bytes_in = tonumber(stats.bytes_in),
    bytes_out = tonumber(stats.bytes_out),
    frames_in = tonumber(stats.frames_in),
    frames_out = tonumber(stats.frames_out),
    last_rtt_ms = stats.last_rtt_ms,
    ms_since_last_frame = tonumber(stats.ms_since_last_frame),
  }
end

--- The connection's counters: bytes_in, bytes_out, frames_in, frames_out,
-- last_rtt_ms (negative before the first ping) and ms_since_last_frame.
function Client:stats()
  return stats_of(function(stats) return library().veltix_client_stats(live(self), stats) end)
end

--- Starts a reconnection loop of at most `max_attempts` attempts (nil:
-- the config's `retry`).
function Client:retry(max_attempts)
  check(library().veltix_client_retry(live(self), max_attempts or -1))
end

--- Stops a reconnection loop; a permanent on_disconnect follows.
function Client:stop_retry()
  check(library().veltix_client_stop_retry(live(self)))
end

--- Waits until the client is neither connected nor reconnecting, at most
-- `timeout_ms` (nil or -1: without end). Returns false on timeout.
function Client:wait_until_closed(timeout_ms)
  local status = library().veltix_client_wait_until_closed(live(self), timeout_ms or -1)
  if status == C.VELTIX_ERR_TIMEOUT then return false end
  check(status)
  return true
end

--- Disconnects (on_disconnect follows, inside `dispatch`).
function Client:disconnect()
  check(library().veltix_client_disconnect(live(self)))
end

-- What a client and a server share, by the prefix of their C functions.
local function add_shared_methods(class, prefix, what)
  --- Ends the route of `type_code`.
  function class:unroute(type_code)
    check(library()[prefix .. "_unroute"](live(self), type_code))
  end

  --- Runs the callbacks that are due, waiting up to `timeout_ms` for one
  -- (0, the default: never waits; -1: waits without end). Returns how
  -- many ran. An error a callback raised is raised here, after the others
  -- ran.
  function class:dispatch(timeout_ms)
    local count = ffi.new("size_t[1]")
    local status = library()[prefix .. "_dispatch"](live(self), timeout_ms or 0, count)
    local err = pending_error
    pending_error = nil
    check(status)
    if err then error(err, 2) end
    return tonumber(count[0])
  end

  --- The descriptor (a SOCKET on Windows) that is readable while
  -- callbacks are due: poll it in an event loop, and `dispatch(0)` when
  -- it is.
  function class:fd()
    local out = ffi.new("veltix_socket_t[1]")
    check(library()[prefix .. "_event_fd"](live(self), out))
    return tonumber(out[0])
  end

  --- Frees it now; it cannot be used again. Safe to call twice.
  function class:close()
    if self.handle then
      local handle = self.handle
      self.handle = nil
      library()[prefix .. "_free"](ffi.gc(handle, nil))
    end
  end

  class.__tostring = function(self)
    return ("veltix %s (%s)"):format(what, self.handle and "open" or "closed")
  end
end

add_shared_methods(Client, "veltix_client", "client")

--- A server for `options.host` (default "0.0.0.0") and `options.port`
-- (default 8080; 0 picks a free one). Other options: buffer_size,
-- max_connection, max_message_size, handshake_timeout_ms,
-- max_outbound_bytes, max_queued_messages, max_queued_bytes,
-- max_memory_bytes, idle_timeout_ms, reply_spin_us, proxy_protocol_from
-- (the load balancers whose connections start with a PROXY header, e.g.
-- "10.0.0.5, 192.168.0.0/16"), cluster_bus, cluster_name and
-- cluster_node_id (cluster mode: "redis://host:port", the cluster's
-- name, this node's id), io_threads (event loops sharing the
-- connections; 0 is one per core), and liveness as for a client. Callbacks run
-- inside `dispatch`, as a client's do. It is freed by `close()`, or when
-- collected.
function veltix.server(options)
  return new_handle("server", Server, SERVER_FIELDS, "host", options, SERVER_STRINGS)
end

add_shared_methods(Server, "veltix_server", "server")

--- Calls `fn(peer, message)` for every message no route takes.
function Server:on_message(fn)
  set_callback(self, "veltix_server_on_recv", trampolines.server_message, fn)
end

--- Calls `fn(peer)` when a client completes its handshake.
function Server:on_connect(fn)
  set_callback(self, "veltix_server_on_connect", trampolines.server_connect, fn)
end

--- Calls `fn(peer, reason)` when a connected client leaves (`reason`: a
-- VELTIX_DISCONNECT_* constant).
function Server:on_disconnect(fn)
  set_callback(self, "veltix_server_on_disconnect", trampolines.server_disconnect, fn)
end

--- Sends messages of `type_code` to `fn(peer, message)`.
function Server:route(type_code, fn)
  check(library().veltix_server_route(live(self), type_code, trampolines.server_message,
    (register(fn)), trampolines.free))
end

--- Starts listening; returns the port (the one picked, for port 0).
function Server:start()
  local L = library()
  check(L.veltix_server_start(live(self)))
  return L.veltix_server_port(live(self))
end

--- Sends `payload` to `peer` as a message of `type_code`.
function Server:send(peer, type_code, payload)
  payload = payload or ""
  check(library().veltix_server_send(live(self), peer, type_code, payload, #payload))
end

--- Replies to `message` from `peer`, inside the callback that received it.
function Server:reply(peer, message, type_code, payload)
  payload = payload or ""
  local to = message.borrowed or error("reply inside the callback that received the message", 2)
  check(library().veltix_server_reply(live(self), peer, to, type_code, payload, #payload))
end

--- Sends a request to `peer`; `fn(err, reply)` runs once, inside a later
-- `dispatch`.
function Server:request(peer, type_code, payload, timeout_ms, fn)
  payload = payload or ""
  request_with(fn, function(user_data)
    return library().veltix_server_request(live(self), peer, type_code, payload, #payload,
      timeout_ms, trampolines.server_reply, user_data)
  end)
end

--- Sends a request to `peer` and waits for its reply, at most `timeout_ms`.
function Server:send_and_wait(peer, type_code, payload, timeout_ms)
  payload = payload or ""
  return waited_reply(function(out)
    return library().veltix_server_send_and_wait(live(self), peer, type_code, payload, #payload,
      timeout_ms, out)
  end)
end

--- Sends `payload` to every connected client but those listed in
-- `except`; returns how many it was sent to.
function Server:broadcast(type_code, payload, except)
  payload = payload or ""
  except = except or {}
  local ids = ffi.new("veltix_peer_id_t[?]", math.max(#except, 1), except)
  local sent = ffi.new("size_t[1]")
  check(library().veltix_server_broadcast(live(self), type_code, payload, #payload, ids, #except,
    sent))
  return tonumber(sent[0])
end

--- Sends `payload` to every client whose tag `name` is `value` (any value,
-- if nil), on every node in cluster mode; returns how many of this
-- server's clients it was sent to.
function Server:send_to_tag(name, value, type_code, payload)
  payload = payload or ""
  local sent = ffi.new("size_t[1]")
  check(library().veltix_server_send_to_tag(live(self), name, value, type_code, payload, #payload,
    sent))
  return tonumber(sent[0])
end

--- Cluster mode: calls `fn(connected)` when the bus is reached or lost.
function Server:on_cluster_state(fn)
  set_callback(self, "veltix_server_on_cluster_state", trampolines.cluster_state, fn)
end

--- Cluster mode: the bus counters, a table with `connected`, `node_id`,
-- `published`, `received`, `dropped`, `malformed` and `disconnects`.
function Server:cluster_stats()
  local stats = ffi.new("veltix_cluster_stats_t")
  stats.struct_size = ffi.sizeof(stats)
  check(library().veltix_server_cluster_stats(live(self), stats))
  return {
    connected = stats.connected, node_id = stats.node_id,
    published = tonumber(stats.published), received = tonumber(stats.received),
    dropped = tonumber(stats.dropped), malformed = tonumber(stats.malformed),
    disconnects = tonumber(stats.disconnects),
  }
end

--- Cluster mode: every live node, in node order, as `{ node_id, clients }`
-- tables, and their total of clients.
function Server:cluster_nodes()
  local L = library()
  local count, total = ffi.new("size_t[1]"), ffi.new("uint64_t[1]")
  check(L.veltix_server_cluster_nodes(live(self), nil, 0, count, nil))
  local capacity = tonumber(count[0]) + 4
  local nodes = ffi.new("veltix_cluster_node_t[?]", capacity)
  check(L.veltix_server_cluster_nodes(live(self), nodes, capacity, count, total))
  local found = {}
  for i = 0, math.min(tonumber(count[0]), capacity) - 1 do
    found[#found + 1] = { node_id = nodes[i].node_id, clients = tonumber(nodes[i].clients) }
  end
  return found, tonumber(total[0])
end

-- The ids `list(out, capacity, count)` writes, asking for the count first.
local function id_list(list)
  local count = ffi.new("size_t[1]")
  check(list(nil, 0, count))
  local capacity = tonumber(count[0]) + 16
  local ids = ffi.new("veltix_peer_id_t[?]", capacity)
  check(list(ids, capacity, count))
  local found = {}
  for i = 0, math.min(tonumber(count[0]), capacity) - 1 do found[#found + 1] = tonumber(ids[i]) end
  return found
end

--- The ids of the connected clients, in increasing order.
function Server:peers()
  return id_list(function(out, capacity, count)
    return library().veltix_server_peers(live(self), out, capacity, count)
  end)
end

--- The ids of the clients whose tag `name` is `value` (any value, if nil).
function Server:peers_with_tag(name, value)
  return id_list(function(out, capacity, count)
    return library().veltix_server_peers_with_tag(live(self), name, value, out, capacity, count)
  end)
end

--- Sets tag `name` of `peer` to `value`.
function Server:set_tag(peer, name, value)
  check(library().veltix_server_set_tag(live(self), peer, name, value))
end

--- Sets tag `name` of `peer` to `value` unless it has that tag; false if
-- it had (its value unchanged).
function Server:add_tag(peer, name, value)
  local status = library().veltix_server_add_tag(live(self), peer, name, value)
  if status == C.VELTIX_ERR_ALREADY_EXISTS then return false end
  check(status)
  return true
end

--- The value of tag `name` of `peer`, or nil if it is not set.
function Server:get_tag(peer, name)
  local L = library()
  local length = ffi.new("size_t[1]")
  while true do
    local status = L.veltix_server_get_tag(live(self), peer, name, nil, 0, length)
    if status == C.VELTIX_ERR_NOT_FOUND then return nil end
    check(status)
    local size = tonumber(length[0]) + 1
    local buffer = ffi.new("char[?]", size)
    status = L.veltix_server_get_tag(live(self), peer, name, buffer, size, length)
    if status == C.VELTIX_ERR_NOT_FOUND then return nil end
    -- BUFFER_TOO_SMALL: set to a longer value meanwhile; ask again.
    if status ~= C.VELTIX_ERR_BUFFER_TOO_SMALL then
      check(status)
      return ffi.string(buffer, length[0])
    end
  end
end

--- Removes tag `name` of `peer`; false if it was not set.
function Server:remove_tag(peer, name)
  local status = library().veltix_server_remove_tag(live(self), peer, name)
  if status == C.VELTIX_ERR_NOT_FOUND then return false end
  check(status)
  return true
end

--- Where `peer` connected from: its IP address (a string) and port.
function Server:peer_address(peer)
  local buffer = ffi.new("char[64]")
  local port = ffi.new("uint16_t[1]")
  check(library().veltix_server_peer_address(live(self), peer, buffer, 64, port))
  return ffi.string(buffer), port[0]
end

--- The counters of `peer`'s connection, as `Client:stats()`.
function Server:peer_stats(peer)
  return stats_of(function(stats) return library().veltix_server_peer_stats(live(self), peer, stats) end)
end

--- Pings `peer` and waits for the answer; the round trip in milliseconds.
-- A client's library thread answers, so this works even for a client
-- that the same thread dispatches.
function Server:ping_client(peer, timeout_ms)
  local rtt = ffi.new("double[1]")
  check(library().veltix_server_ping_client(live(self), peer, timeout_ms, rtt))
  return rtt[0]
end

--- How many clients are connected.
function Server:client_count()
  return tonumber(library().veltix_server_client_count(live(self)))
end

--- The port it listens on (the one picked, for port 0).
function Server:port()
  return library().veltix_server_port(live(self))
end

--- Stops listening and closes every connection (on_disconnect follows for
-- each, inside `dispatch`); `start()` listens again. `close()` frees it.
function Server:shutdown()
  check(library().veltix_server_close(live(self)))
end

--- Drains it for a rolling deploy: stops listening, then closes its
-- connections `peers_per_second` at a time (0 or nil: all at once), so
-- that clients with `retry` come back through the load balancer to
-- other nodes.
function Server:drain(peers_per_second)
  check(library().veltix_server_drain(live(self), peers_per_second or 0))
end

--- Disconnects `peer`.
function Server:close_client(peer)
  check(library().veltix_server_close_client(live(self), peer))
end

return veltix
