'use strict';
// The C declarations of include/veltix.h, as koffi sees them, and the
// loading of the library. test/layouts.js prints every struct's layout,
// every function's parameter kinds and sizes and every constant from
// these declarations, and bindings/check_layouts.py compares them with
// the C compiler's, so a header change this file misses fails CI.
//
// `user_data` is declared as intptr_t: the binding passes a number (its
// registration's id), and on every ABI koffi supports an intptr_t travels
// exactly as a `void *` does.
const fs = require('node:fs');
const path = require('node:path');
const koffi = require('koffi');

const constants = Object.freeze({
  VELTIX_OK: 0,
  VELTIX_ERR_NULL_POINTER: -1,
  VELTIX_ERR_INVALID_ARGUMENT: -2,
  VELTIX_ERR_NOT_CONNECTED: -3,
  VELTIX_ERR_ALREADY_CONNECTED: -4,
  VELTIX_ERR_CONNECT_FAILED: -5,
  VELTIX_ERR_HANDSHAKE_FAILED: -6,
  VELTIX_ERR_VERSION_MISMATCH: -7,
  VELTIX_ERR_SERVER_FULL: -8,
  VELTIX_ERR_TIMEOUT: -9,
  VELTIX_ERR_MESSAGE_TOO_LARGE: -10,
  VELTIX_ERR_IO: -11,
  VELTIX_ERR_CLOSED: -12,
  VELTIX_ERR_IDS_EXHAUSTED: -13,
  VELTIX_ERR_ALREADY_EXISTS: -14,
  VELTIX_ERR_NOT_FOUND: -15,
  VELTIX_ERR_PANIC: -16,
  VELTIX_ERR_BIND_FAILED: -17,
  VELTIX_ERR_BUFFER_TOO_SMALL: -18,
  VELTIX_ERR_ALREADY_RUNNING: -19,
  VELTIX_DISCONNECT_SERVER_CLOSED: 0,
  VELTIX_DISCONNECT_ERROR: 1,
  VELTIX_DISCONNECT_MANUAL: 2,
  VELTIX_DISCONNECT_PEER_CLOSED: 3,
  VELTIX_LOG_ERROR: 0,
  VELTIX_LOG_WARN: 1,
  VELTIX_LOG_INFO: 2,
  VELTIX_LOG_DEBUG: 3,
});

const types = {};
types.liveness = koffi.struct('veltix_liveness_t', {
  heartbeat_interval_ms: 'uint32_t',
  heartbeat_timeout_ms: 'uint32_t',
  keepalive_idle_s: 'uint32_t',
  keepalive_interval_s: 'uint32_t',
  keepalive_count: 'uint32_t',
});
types.clientConfig = koffi.struct('veltix_client_config_t', {
  struct_size: 'uint32_t',
  server_addr: 'const char *',
  port: 'uint16_t',
  buffer_size: 'uint32_t',
  max_message_size: 'uint32_t',
  handshake_timeout_ms: 'uint32_t',
  max_workers: 'uint32_t',
  retry: 'uint32_t',
  retry_delay_ms: 'uint32_t',
  send_timeout_ms: 'uint32_t',
  max_queued_messages: 'uint32_t',
  max_queued_bytes: 'uint32_t',
  liveness: 'veltix_liveness_t',
  retry_delay_max_ms: 'uint32_t',
  retry_jitter: 'bool',
  reserved0: koffi.array('uint8_t', 7),
  reply_spin_us: 'uint32_t',
});
types.serverConfig = koffi.struct('veltix_server_config_t', {
  struct_size: 'uint32_t',
  host: 'const char *',
  port: 'uint16_t',
  buffer_size: 'uint32_t',
  max_connection: 'int32_t',
  max_message_size: 'uint32_t',
  handshake_timeout_ms: 'uint32_t',
  max_workers: 'uint32_t',
  max_outbound_bytes: 'uint32_t',
  max_queued_messages: 'uint32_t',
  max_queued_bytes: 'uint32_t',
  max_memory_bytes: 'uint64_t',
  liveness: 'veltix_liveness_t',
  idle_timeout_ms: 'uint32_t',
  callbacks_on_io_thread: 'bool',
  reserved0: koffi.array('uint8_t', 7),
  reply_spin_us: 'uint32_t',
  reserved1: 'uint32_t',
  proxy_protocol_from: 'const char *',
  reserved2: 'uint32_t',
  cluster_bus: 'const char *',
  cluster_name: 'const char *',
  cluster_node_id: 'uint16_t',
  reserved3: koffi.array('uint8_t', 6),
  io_threads: 'uint32_t',
});
types.clusterStats = koffi.struct('veltix_cluster_stats_t', {
  struct_size: 'uint32_t',
  connected: 'bool',
  node_id: 'uint16_t',
  published: 'uint64_t',
  received: 'uint64_t',
  dropped: 'uint64_t',
  malformed: 'uint64_t',
  disconnects: 'uint64_t',
});
types.clusterNode = koffi.struct('veltix_cluster_node_t', {
  node_id: 'uint16_t',
  clients: 'uint64_t',
});
types.disconnectState = koffi.struct('veltix_disconnect_state_t', {
  permanent: 'bool',
  attempt: 'uint32_t',
  retry_max: 'uint32_t',
  reason: 'int32_t',
  next_delay_ms: 'uint32_t',
});
types.stats = koffi.struct('veltix_stats_t', {
  struct_size: 'uint32_t',
  bytes_in: 'uint64_t',
  bytes_out: 'uint64_t',
  frames_in: 'uint64_t',
  frames_out: 'uint64_t',
  last_rtt_ms: 'double',
  ms_since_last_frame: 'uint64_t',
});
koffi.opaque('veltix_client_t');
koffi.opaque('veltix_server_t');
koffi.opaque('veltix_message_t');

// The callback types, by the binding's name for them.
const callbackDeclarations = {
  free: 'void veltix_free_fn(intptr_t user_data)',
  connect: 'void veltix_connect_fn(intptr_t user_data, veltix_client_t *client)',
  disconnect: 'void veltix_disconnect_fn(intptr_t user_data, veltix_client_t *client, const veltix_disconnect_state_t *state)',
  message: 'void veltix_message_fn(intptr_t user_data, veltix_client_t *client, const veltix_message_t *message)',
  reply: 'void veltix_reply_fn(intptr_t user_data, veltix_client_t *client, int32_t status, const veltix_message_t *reply, const char *error)',
  serverConnect: 'void veltix_server_connect_fn(intptr_t user_data, veltix_server_t *server, uint64_t peer)',
  serverDisconnect: 'void veltix_server_disconnect_fn(intptr_t user_data, veltix_server_t *server, uint64_t peer, int32_t reason)',
  serverMessage: 'void veltix_server_message_fn(intptr_t user_data, veltix_server_t *server, uint64_t peer, const veltix_message_t *message)',
  serverReply: 'void veltix_server_reply_fn(intptr_t user_data, veltix_server_t *server, uint64_t peer, int32_t status, const veltix_message_t *reply, const char *error)',
  clusterState: 'void veltix_cluster_state_fn(intptr_t user_data, veltix_server_t *server, bool connected)',
};
const prototypes = Object.fromEntries(
  Object.entries(callbackDeclarations).map(([name, declaration]) => [name, koffi.proto(declaration)]));

// Every function the binding calls, by its C name.
const functions = [
  'const char *veltix_version(void)',
  'const char *veltix_last_error(void)',
  'const char *veltix_status_str(int32_t status)',
  'uint16_t veltix_message_type(const veltix_message_t *message)',
  'uint16_t veltix_message_request_id(const veltix_message_t *message)',
  'const uint8_t *veltix_message_content(const veltix_message_t *message, _Out_ size_t *len_out)',
  'veltix_message_t *veltix_message_clone(const veltix_message_t *message)',
  'void veltix_message_free(veltix_message_t *message)',
  'int32_t veltix_client_config_init(_Out_ veltix_client_config_t *config, size_t struct_size)',
  'int32_t veltix_client_new(const veltix_client_config_t *config, _Out_ veltix_client_t **out)',
  'void veltix_client_free(veltix_client_t *client)',
  'int32_t veltix_client_on_connect(veltix_client_t *client, veltix_connect_fn *fn, intptr_t user_data, veltix_free_fn *free_user_data)',
  'int32_t veltix_client_on_disconnect(veltix_client_t *client, veltix_disconnect_fn *fn, intptr_t user_data, veltix_free_fn *free_user_data)',
  'int32_t veltix_client_on_recv(veltix_client_t *client, veltix_message_fn *fn, intptr_t user_data, veltix_free_fn *free_user_data)',
  'int32_t veltix_client_route(veltix_client_t *client, uint16_t type_code, veltix_message_fn *fn, intptr_t user_data, veltix_free_fn *free_user_data)',
  'int32_t veltix_client_unroute(veltix_client_t *client, uint16_t type_code)',
  'int32_t veltix_client_connect_async(veltix_client_t *client)',
  'int32_t veltix_client_disconnect(veltix_client_t *client)',
  'bool veltix_client_is_connected(const veltix_client_t *client)',
  'int32_t veltix_client_send(veltix_client_t *client, uint16_t type_code, const uint8_t *data, size_t len)',
  'int32_t veltix_client_reply(veltix_client_t *client, const veltix_message_t *to, uint16_t type_code, const uint8_t *data, size_t len)',
  'int32_t veltix_client_request(veltix_client_t *client, uint16_t type_code, const uint8_t *data, size_t len, uint32_t timeout_ms, veltix_reply_fn *on_reply, intptr_t user_data)',
  'int32_t veltix_client_ping(veltix_client_t *client, uint32_t timeout_ms, _Out_ double *out_rtt_ms)',
  'int32_t veltix_client_dispatch(veltix_client_t *client, int32_t timeout_ms, _Out_ size_t *out_count)',
  'int32_t veltix_client_event_fd(veltix_client_t *client, _Out_ veltix_socket_t *out_fd)',
  'int32_t veltix_client_retry(veltix_client_t *client, int32_t max_attempts)',
  'int32_t veltix_client_stop_retry(veltix_client_t *client)',
  'int32_t veltix_client_stats(veltix_client_t *client, _Inout_ veltix_stats_t *out)',
  'int32_t veltix_server_config_init(_Out_ veltix_server_config_t *config, size_t struct_size)',
  'int32_t veltix_server_new(const veltix_server_config_t *config, _Out_ veltix_server_t **out)',
  'void veltix_server_free(veltix_server_t *server)',
  'int32_t veltix_server_on_connect(veltix_server_t *server, veltix_server_connect_fn *fn, intptr_t user_data, veltix_free_fn *free_user_data)',
  'int32_t veltix_server_on_disconnect(veltix_server_t *server, veltix_server_disconnect_fn *fn, intptr_t user_data, veltix_free_fn *free_user_data)',
  'int32_t veltix_server_on_recv(veltix_server_t *server, veltix_server_message_fn *fn, intptr_t user_data, veltix_free_fn *free_user_data)',
  'int32_t veltix_server_route(veltix_server_t *server, uint16_t type_code, veltix_server_message_fn *fn, intptr_t user_data, veltix_free_fn *free_user_data)',
  'int32_t veltix_server_unroute(veltix_server_t *server, uint16_t type_code)',
  'int32_t veltix_server_start(veltix_server_t *server)',
  'uint16_t veltix_server_port(const veltix_server_t *server)',
  'int32_t veltix_server_close(veltix_server_t *server)',
  'int32_t veltix_server_drain(veltix_server_t *server, uint32_t peers_per_second)',
  'size_t veltix_server_client_count(const veltix_server_t *server)',
  'int32_t veltix_server_send(veltix_server_t *server, uint64_t peer, uint16_t type_code, const uint8_t *data, size_t len)',
  'int32_t veltix_server_reply(veltix_server_t *server, uint64_t peer, const veltix_message_t *to, uint16_t type_code, const uint8_t *data, size_t len)',
  'int32_t veltix_server_request(veltix_server_t *server, uint64_t peer, uint16_t type_code, const uint8_t *data, size_t len, uint32_t timeout_ms, veltix_server_reply_fn *on_reply, intptr_t user_data)',
  'int32_t veltix_server_ping_client(veltix_server_t *server, uint64_t peer, uint32_t timeout_ms, _Out_ double *out_rtt_ms)',
  'int32_t veltix_server_broadcast(veltix_server_t *server, uint16_t type_code, const uint8_t *data, size_t len, const uint64_t *except, size_t except_count, _Out_ size_t *out_sent)',
  'int32_t veltix_server_dispatch(veltix_server_t *server, int32_t timeout_ms, _Out_ size_t *out_count)',
  'int32_t veltix_server_event_fd(veltix_server_t *server, _Out_ veltix_socket_t *out_fd)',
  'int32_t veltix_server_peers(const veltix_server_t *server, _Out_ uint64_t *out_peers, size_t capacity, _Out_ size_t *out_count)',
  'int32_t veltix_server_peers_with_tag(const veltix_server_t *server, const char *name, const char *value, _Out_ uint64_t *out_peers, size_t capacity, _Out_ size_t *out_count)',
  'int32_t veltix_server_set_tag(veltix_server_t *server, uint64_t peer, const char *name, const char *value)',
  'int32_t veltix_server_get_tag(const veltix_server_t *server, uint64_t peer, const char *name, _Out_ uint8_t *buf, size_t buf_size, _Out_ size_t *out_len)',
  'int32_t veltix_server_remove_tag(veltix_server_t *server, uint64_t peer, const char *name)',
  'int32_t veltix_server_peer_address(const veltix_server_t *server, uint64_t peer, _Out_ uint8_t *buf, size_t buf_size, _Out_ uint16_t *out_port)',
  'int32_t veltix_server_close_client(veltix_server_t *server, uint64_t peer)',
  'int32_t veltix_server_send_to_tag(veltix_server_t *server, const char *name, const char *value, uint16_t type_code, const uint8_t *data, size_t len, _Out_ size_t *out_sent)',
  'int32_t veltix_server_on_cluster_state(veltix_server_t *server, veltix_cluster_state_fn *fn, intptr_t user_data, veltix_free_fn *free_user_data)',
  'int32_t veltix_server_cluster_stats(const veltix_server_t *server, _Inout_ veltix_cluster_stats_t *out)',
  'int32_t veltix_server_cluster_nodes(const veltix_server_t *server, _Out_ veltix_cluster_node_t *out_nodes, size_t capacity, _Out_ size_t *out_count, _Out_ uint64_t *out_total)',
];

// veltix_socket_t: a SOCKET (uintptr_t) on Windows, an int elsewhere.
koffi.alias('veltix_socket_t', process.platform === 'win32' ? 'uintptr_t' : 'int');

const LIBRARY_NAMES = { win32: 'veltix.dll', darwin: 'libveltix.dylib' };

/** The file name of the library on this system. */
function libraryFileName() {
  return LIBRARY_NAMES[process.platform] || 'libveltix.so';
}

/**
 * Where the library is looked for, in order: `explicit`, the file named by
 * VELTIX_LIBRARY, the package's own prebuilds/<platform>-<arch>/ folder,
 * then the bare name, which the system's loader searches for.
 */
function candidates(explicit) {
  const bundled = path.join(__dirname, '..', 'prebuilds', `${process.platform}-${process.arch}`, libraryFileName());
  if (explicit) return [explicit];
  if (process.env.VELTIX_LIBRARY) return [process.env.VELTIX_LIBRARY];
  return fs.existsSync(bundled) ? [bundled] : [libraryFileName()];
}

let api = null;

/** Loads libveltix (see `candidates`) and declares its functions; returns them by C name. */
function load(explicit) {
  const [file] = candidates(explicit);
  const lib = koffi.load(file);
  const loaded = { file };
  for (const declaration of functions) {
    const fn = lib.func(declaration);
    loaded[fn.info.name] = fn;
  }
  api = loaded;
  return api;
}

/** The library's functions, loading it on first use. */
function native() {
  return api || load();
}

module.exports = { koffi, constants, types, prototypes, callbackDeclarations, functions, load, native };
