-- A LuaJIT host using libveltix in dispatch mode: every callback runs on
-- this (the only Lua) thread, inside veltix_client_dispatch(). A callback
-- from another thread would kill LuaJIT ("bad callback").
--
--   luajit luajit_client.lua <path to libveltix.so> <port> [runs]
--
-- Each run: connect with veltix_client_connect_async (on_connect arrives
-- in a dispatch, the thread never waits for the network), send 20 messages
-- of type 200 (the server echoes them), receive every echo through a route,
-- make one request with veltix_client_request (its reply arrives in a
-- callback, never blocking this thread), unroute type 200 (its free_user_data
-- runs once, before unroute returns) so the next
-- echo reaches on_recv instead, disconnect and free (which
-- delivers on_disconnect on this thread). Then one connect_async to a port
-- that refuses: its permanent on_disconnect arrives with the cause in
-- veltix_last_error(). Prints "OK <runs>" at the end.
local ffi = require("ffi")

ffi.cdef[[
typedef struct veltix_client_t veltix_client_t;
typedef struct veltix_message_t veltix_message_t;
typedef int32_t veltix_status_t;
typedef struct veltix_client_config_t {
    uint32_t struct_size;
    const char *server_addr;
    uint16_t port;
    uint32_t buffer_size;
    uint32_t max_message_size;
    uint32_t handshake_timeout_ms;
    uint32_t max_workers;
    uint32_t retry;
    uint32_t retry_delay_ms;
    uint32_t send_timeout_ms;
    uint32_t max_queued_messages;
    uint32_t max_queued_bytes;
} veltix_client_config_t;
typedef struct veltix_disconnect_state_t {
    bool permanent;
    uint32_t attempt;
    uint32_t retry_max;
    int32_t reason;
} veltix_disconnect_state_t;
typedef void (*veltix_message_fn)(void *, veltix_client_t *, const veltix_message_t *);
typedef void (*veltix_connect_fn)(void *, veltix_client_t *);
typedef void (*veltix_disconnect_fn)(void *, veltix_client_t *, const veltix_disconnect_state_t *);
typedef void (*veltix_free_fn)(void *);
typedef void (*veltix_reply_fn)(void *, veltix_client_t *, veltix_status_t,
                                const veltix_message_t *, const char *);
veltix_status_t veltix_client_request(veltix_client_t *client, uint16_t type_code,
                                      const uint8_t *data, size_t len, uint32_t timeout_ms,
                                      veltix_reply_fn on_reply, void *user_data);
veltix_status_t veltix_client_config_init(veltix_client_config_t *config, size_t struct_size);
veltix_status_t veltix_client_new(const veltix_client_config_t *config, veltix_client_t **out);
void veltix_client_free(veltix_client_t *client);
veltix_status_t veltix_client_route(veltix_client_t *client, uint16_t type_code,
                                    veltix_message_fn fn, void *user_data,
                                    veltix_free_fn free_user_data);
veltix_status_t veltix_client_on_disconnect(veltix_client_t *client, veltix_disconnect_fn fn,
                                            void *user_data, veltix_free_fn free_user_data);
veltix_status_t veltix_client_on_connect(veltix_client_t *client, veltix_connect_fn fn,
                                         void *user_data, veltix_free_fn free_user_data);
veltix_status_t veltix_client_connect_async(veltix_client_t *client);
veltix_status_t veltix_client_on_recv(veltix_client_t *client, veltix_message_fn fn,
                                      void *user_data, veltix_free_fn free_user_data);
veltix_status_t veltix_client_unroute(veltix_client_t *client, uint16_t type_code);
veltix_status_t veltix_client_disconnect(veltix_client_t *client);
veltix_status_t veltix_client_send(veltix_client_t *client, uint16_t type_code,
                                   const uint8_t *data, size_t len);
veltix_status_t veltix_client_dispatch(veltix_client_t *client, int32_t timeout_ms,
                                       size_t *out_count);
const uint8_t *veltix_message_content(const veltix_message_t *message, size_t *out_len);
const char *veltix_last_error(void);
const char *veltix_status_str(veltix_status_t status);
unsigned long pthread_self(void);
]]

local lib = ffi.load(assert(arg[1], "usage: luajit_client.lua <libveltix.so> <port> [runs]"))
local port = assert(tonumber(arg[2]), "port")
local runs = tonumber(arg[3] or "20")
local MESSAGES = 20

local function check(status, what)
    if status ~= 0 then
        error(string.format("%s: %s (%s)", what, ffi.string(lib.veltix_status_str(status)),
                            ffi.string(lib.veltix_last_error())))
    end
end

-- Callbacks are created once and live for the whole program. Each checks
-- that it runs on this thread.
local main_thread = ffi.C.pthread_self()
local function on_this_thread()
    assert(ffi.C.pthread_self() == main_thread, "a callback ran on another thread")
end
local echoes, disconnects, connects = {}, {}, 0
local on_connect = ffi.cast("veltix_connect_fn", function()
    on_this_thread()
    connects = connects + 1
end)
local on_echo = ffi.cast("veltix_message_fn", function(_, _, message)
    on_this_thread()
    local len = ffi.new("size_t[1]")
    local data = lib.veltix_message_content(message, len)
    echoes[#echoes + 1] = ffi.string(data, len[0])
end)
-- free_user_data of the route: called once, on this thread, by unroute.
local route_freed = 0
local on_route_free = ffi.cast("veltix_free_fn", function()
    on_this_thread()
    route_freed = route_freed + 1
end)
local received = {}
local on_recv = ffi.cast("veltix_message_fn", function(_, _, message)
    on_this_thread()
    local len = ffi.new("size_t[1]")
    local data = lib.veltix_message_content(message, len)
    received[#received + 1] = ffi.string(data, len[0])
end)
local replies = {}
local on_reply = ffi.cast("veltix_reply_fn", function(_, _, status, reply, error)
    on_this_thread()
    local len = ffi.new("size_t[1]")
    local text = reply ~= nil and ffi.string(lib.veltix_message_content(reply, len), len[0])
        or ffi.string(error)
    replies[#replies + 1] = { status = tonumber(status), text = text }
end)
local on_disconnect = ffi.cast("veltix_disconnect_fn", function(_, _, state)
    on_this_thread()
    disconnects[#disconnects + 1] = tonumber(state.reason)
    disconnects.permanent = state.permanent
    disconnects.cause = ffi.string(lib.veltix_last_error())
end)

-- Dispatches until done() is true, at most 100 rounds of up to 100 ms.
local function dispatch_until(client, done, what)
    local rounds = 0
    while not done() do
        check(lib.veltix_client_dispatch(client, 100, nil), "dispatch")
        rounds = rounds + 1
        assert(rounds < 100, what .. " missing after 100 dispatch rounds of up to 100 ms")
    end
end

local function new_client(to_port)
    local config = ffi.new("veltix_client_config_t")
    check(lib.veltix_client_config_init(config, ffi.sizeof(config)), "config_init")
    config.server_addr = "127.0.0.1"
    config.port = to_port
    config.max_workers = 0 -- dispatch mode
    local out = ffi.new("veltix_client_t *[1]")
    check(lib.veltix_client_new(config, out), "veltix_client_new")
    local client = out[0]
    check(lib.veltix_client_on_connect(client, on_connect, nil, nil), "on_connect")
    check(lib.veltix_client_on_disconnect(client, on_disconnect, nil, nil), "on_disconnect")
    return client
end

for run = 1, runs do
    echoes, disconnects, connects = {}, {}, 0
    local client = new_client(port)
    route_freed = 0
    check(lib.veltix_client_route(client, 200, on_echo, nil, on_route_free), "route")
    check(lib.veltix_client_connect_async(client), "connect_async")
    dispatch_until(client, function() return connects == 1 end, "on_connect")
    for i = 1, MESSAGES do
        local text = string.format("run %d message %d", run, i)
        check(lib.veltix_client_send(client, 200, ffi.cast("const uint8_t *", text), #text), "send")
    end
    dispatch_until(client, function() return #echoes >= MESSAGES end, "echoes")
    -- The reference server replies from a pool of threads: any order.
    local expected = {}
    for i = 1, MESSAGES do
        expected[i] = string.format("run %d message %d", run, i)
    end
    table.sort(expected)
    table.sort(echoes)
    for i = 1, MESSAGES do
        assert(echoes[i] == expected[i], "echo " .. expected[i] .. " received once")
    end
    replies = {}
    local question = "request of run " .. run
    check(lib.veltix_client_request(client, 200, ffi.cast("const uint8_t *", question), #question,
                                    5000, on_reply, nil), "request")
    dispatch_until(client, function() return #replies >= 1 end, "the request's reply")
    assert(replies[1].status == 0 and replies[1].text == question, "the request's reply")
    -- Without the route, the echo goes to on_recv.
    received = {}
    check(lib.veltix_client_on_recv(client, on_recv, nil, nil), "on_recv")
    assert(route_freed == 0, "the route is still registered")
    check(lib.veltix_client_unroute(client, 200), "unroute")
    assert(route_freed == 1, "unroute released the route's user_data once, before returning")
    local last = "unrouted " .. run
    check(lib.veltix_client_send(client, 200, ffi.cast("const uint8_t *", last), #last), "send")
    dispatch_until(client, function() return #received >= 1 end, "the on_recv message")
    assert(received[1] == last and #echoes == MESSAGES, "on_recv got it, the old route did not")
    check(lib.veltix_client_disconnect(client), "disconnect")
    lib.veltix_client_free(client) -- runs the due on_disconnect on this thread
    assert(#disconnects == 1 and disconnects[1] == 2, "one on_disconnect(MANUAL) by free")
    assert(route_freed == 1, "released once in all")
end

-- A refused connection (port 1: nothing listens there).
disconnects = {}
local refused = new_client(1)
check(lib.veltix_client_connect_async(refused), "connect_async")
dispatch_until(refused, function() return disconnects.permanent end, "the permanent on_disconnect")
assert(disconnects[1] == 1, "reason ERROR")
assert(disconnects.cause:find("refused"), "the cause inside on_disconnect: " .. disconnects.cause)
lib.veltix_client_free(refused)
print("OK " .. runs)
