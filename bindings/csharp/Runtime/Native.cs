// The C declarations of include/veltix.h, as P/Invoke sees them. Every
// struct's size and field offsets, every function's parameter sizes and
// every constant are compared with the C compiler's by
// bindings/check_layouts.py (through Tests/Layouts.cs), so a header change
// this file misses fails CI.
//
// Conventions:
// - Strings going in are NUL-terminated UTF-8 byte arrays (Utf8.Encode),
//   the same on every runtime; strings coming out are IntPtr read by
//   Utf8.Decode (the library owns them).
// - C `bool` is a byte in structs and `[MarshalAs(UnmanagedType.U1)]` in
//   signatures; `size_t` is UIntPtr.
// - Handles are SafeHandles, so a handle is never freed while a call on
//   it runs (a Dispose inside a callback frees after Dispatch returns).
using System;
using System.Runtime.InteropServices;

namespace Veltix.Interop
{
    /// <summary>veltix_liveness_t.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct veltix_liveness_t
    {
        public uint heartbeat_interval_ms;
        public uint heartbeat_timeout_ms;
        public uint keepalive_idle_s;
        public uint keepalive_interval_s;
        public uint keepalive_count;
    }

    /// <summary>The `uint8_t reserved0[7]` of the config structs, kept blittable.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct Reserved7
    {
        public byte b0, b1, b2, b3, b4, b5, b6;
    }

    /// <summary>The `uint8_t reserved3[6]` of the server config, kept blittable.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct Reserved6
    {
        public byte b0, b1, b2, b3, b4, b5;
    }

    /// <summary>veltix_client_config_t.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct veltix_client_config_t
    {
        public uint struct_size;
        public IntPtr server_addr;
        public ushort port;
        public uint buffer_size;
        public uint max_message_size;
        public uint handshake_timeout_ms;
        public uint max_workers;
        public uint retry;
        public uint retry_delay_ms;
        public uint send_timeout_ms;
        public uint max_queued_messages;
        public uint max_queued_bytes;
        public veltix_liveness_t liveness;
        public uint retry_delay_max_ms;
        public byte retry_jitter;
        public Reserved7 reserved0;
        public uint reply_spin_us;
    }

    /// <summary>veltix_server_config_t.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct veltix_server_config_t
    {
        public uint struct_size;
        public IntPtr host;
        public ushort port;
        public uint buffer_size;
        public int max_connection;
        public uint max_message_size;
        public uint handshake_timeout_ms;
        public uint max_workers;
        public uint max_outbound_bytes;
        public uint max_queued_messages;
        public uint max_queued_bytes;
        public ulong max_memory_bytes;
        public veltix_liveness_t liveness;
        public uint idle_timeout_ms;
        public byte callbacks_on_io_thread;
        public Reserved7 reserved0;
        public uint reply_spin_us;
        public uint reserved1;
        public IntPtr proxy_protocol_from;
        public uint reserved2;
        public IntPtr cluster_bus;
        public IntPtr cluster_name;
        public ushort cluster_node_id;
        public Reserved6 reserved3;
        public uint io_threads;
    }

    /// <summary>veltix_cluster_stats_t.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct veltix_cluster_stats_t
    {
        public uint struct_size;
        public byte connected;
        public ushort node_id;
        public ulong published;
        public ulong received;
        public ulong dropped;
        public ulong malformed;
        public ulong disconnects;
    }

    /// <summary>veltix_cluster_node_t.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct veltix_cluster_node_t
    {
        public ushort node_id;
        public ulong clients;
    }

    /// <summary>veltix_disconnect_state_t.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct veltix_disconnect_state_t
    {
        public byte permanent;
        public uint attempt;
        public uint retry_max;
        public int reason;
        public uint next_delay_ms;
    }

    /// <summary>veltix_stats_t.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct veltix_stats_t
    {
        public uint struct_size;
        public ulong bytes_in;
        public ulong bytes_out;
        public ulong frames_in;
        public ulong frames_out;
        public double last_rtt_ms;
        public ulong ms_since_last_frame;
    }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void veltix_free_fn(IntPtr userData);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void veltix_connect_fn(IntPtr userData, IntPtr client);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void veltix_disconnect_fn(IntPtr userData, IntPtr client, IntPtr state);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void veltix_message_fn(IntPtr userData, IntPtr client, IntPtr message);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void veltix_reply_fn(IntPtr userData, IntPtr client, int status, IntPtr reply, IntPtr error);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void veltix_server_connect_fn(IntPtr userData, IntPtr server, ulong peer);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void veltix_server_disconnect_fn(IntPtr userData, IntPtr server, ulong peer, int reason);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void veltix_server_message_fn(IntPtr userData, IntPtr server, ulong peer, IntPtr message);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void veltix_server_reply_fn(IntPtr userData, IntPtr server, ulong peer, int status, IntPtr reply, IntPtr error);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void veltix_cluster_state_fn(IntPtr userData, IntPtr server, [MarshalAs(UnmanagedType.U1)] bool connected);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void veltix_log_fn(IntPtr userData, int level, IntPtr message);

    /// <summary>
    /// Unity's IL2CPP compiles callbacks from native code ahead of time and
    /// looks for an attribute of this name on each. Mono's full AOT does too;
    /// elsewhere it is ignored.
    /// </summary>
    [AttributeUsage(AttributeTargets.Method)]
    internal sealed class MonoPInvokeCallbackAttribute : Attribute
    {
        public MonoPInvokeCallbackAttribute(Type delegateType)
        {
            DelegateType = delegateType;
        }

        public Type DelegateType { get; private set; }
    }

    internal static class Native
    {
        internal const string Library = "veltix";

        internal const int VELTIX_OK = 0;
        internal const int VELTIX_ERR_NULL_POINTER = -1;
        internal const int VELTIX_ERR_INVALID_ARGUMENT = -2;
        internal const int VELTIX_ERR_NOT_CONNECTED = -3;
        internal const int VELTIX_ERR_ALREADY_CONNECTED = -4;
        internal const int VELTIX_ERR_CONNECT_FAILED = -5;
        internal const int VELTIX_ERR_HANDSHAKE_FAILED = -6;
        internal const int VELTIX_ERR_VERSION_MISMATCH = -7;
        internal const int VELTIX_ERR_SERVER_FULL = -8;
        internal const int VELTIX_ERR_TIMEOUT = -9;
        internal const int VELTIX_ERR_MESSAGE_TOO_LARGE = -10;
        internal const int VELTIX_ERR_IO = -11;
        internal const int VELTIX_ERR_CLOSED = -12;
        internal const int VELTIX_ERR_IDS_EXHAUSTED = -13;
        internal const int VELTIX_ERR_ALREADY_EXISTS = -14;
        internal const int VELTIX_ERR_NOT_FOUND = -15;
        internal const int VELTIX_ERR_PANIC = -16;
        internal const int VELTIX_ERR_BIND_FAILED = -17;
        internal const int VELTIX_ERR_BUFFER_TOO_SMALL = -18;
        internal const int VELTIX_ERR_ALREADY_RUNNING = -19;
        internal const int VELTIX_DISCONNECT_SERVER_CLOSED = 0;
        internal const int VELTIX_DISCONNECT_ERROR = 1;
        internal const int VELTIX_DISCONNECT_MANUAL = 2;
        internal const int VELTIX_DISCONNECT_PEER_CLOSED = 3;
        internal const int VELTIX_LOG_ERROR = 0;
        internal const int VELTIX_LOG_WARN = 1;
        internal const int VELTIX_LOG_INFO = 2;
        internal const int VELTIX_LOG_DEBUG = 3;

        // Library-wide.
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr veltix_version();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr veltix_status_str(int status);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr veltix_last_error();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void veltix_set_logger(veltix_log_fn fn, IntPtr userData, int maxLevel, veltix_free_fn freeUserData);

        // Messages.
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ushort veltix_message_type(IntPtr message);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ushort veltix_message_request_id(IntPtr message);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr veltix_message_content(IntPtr message, out UIntPtr length);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern MessageHandle veltix_message_clone(IntPtr message);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void veltix_message_free(IntPtr message);

        // The client.
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_client_config_init(ref veltix_client_config_t config, UIntPtr structSize);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_client_new(ref veltix_client_config_t config, out ClientHandle client);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void veltix_client_free(IntPtr client);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_client_on_connect(ClientHandle client, veltix_connect_fn fn, IntPtr userData, veltix_free_fn freeUserData);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_client_on_disconnect(ClientHandle client, veltix_disconnect_fn fn, IntPtr userData, veltix_free_fn freeUserData);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_client_on_recv(ClientHandle client, veltix_message_fn fn, IntPtr userData, veltix_free_fn freeUserData);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_client_route(ClientHandle client, ushort typeCode, veltix_message_fn fn, IntPtr userData, veltix_free_fn freeUserData);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_client_unroute(ClientHandle client, ushort typeCode);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_client_connect(ClientHandle client);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_client_connect_async(ClientHandle client);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_client_disconnect(ClientHandle client);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        [return: MarshalAs(UnmanagedType.U1)]
        internal static extern bool veltix_client_is_connected(ClientHandle client);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_client_send(ClientHandle client, ushort typeCode, ref byte data, UIntPtr length);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_client_reply(ClientHandle client, IntPtr to, ushort typeCode, ref byte data, UIntPtr length);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_client_request(ClientHandle client, ushort typeCode, ref byte data, UIntPtr length, uint timeoutMs, veltix_reply_fn onReply, IntPtr userData);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_client_send_and_wait(ClientHandle client, ushort typeCode, ref byte data, UIntPtr length, uint timeoutMs, out MessageHandle response);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_client_ping(ClientHandle client, uint timeoutMs, out double rttMs);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_client_dispatch(ClientHandle client, int timeoutMs, out UIntPtr count);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_client_retry(ClientHandle client, int maxAttempts);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_client_stop_retry(ClientHandle client);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_client_stats(ClientHandle client, ref veltix_stats_t stats);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_client_wait_until_closed(ClientHandle client, int timeoutMs);

        // The server.
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_config_init(ref veltix_server_config_t config, UIntPtr structSize);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_new(ref veltix_server_config_t config, out ServerHandle server);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void veltix_server_free(IntPtr server);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_on_connect(ServerHandle server, veltix_server_connect_fn fn, IntPtr userData, veltix_free_fn freeUserData);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_on_disconnect(ServerHandle server, veltix_server_disconnect_fn fn, IntPtr userData, veltix_free_fn freeUserData);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_on_recv(ServerHandle server, veltix_server_message_fn fn, IntPtr userData, veltix_free_fn freeUserData);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_route(ServerHandle server, ushort typeCode, veltix_server_message_fn fn, IntPtr userData, veltix_free_fn freeUserData);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_unroute(ServerHandle server, ushort typeCode);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_start(ServerHandle server);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ushort veltix_server_port(ServerHandle server);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_close(ServerHandle server);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_drain(ServerHandle server, uint peersPerSecond);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern UIntPtr veltix_server_client_count(ServerHandle server);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_send(ServerHandle server, ulong peer, ushort typeCode, ref byte data, UIntPtr length);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_reply(ServerHandle server, ulong peer, IntPtr to, ushort typeCode, ref byte data, UIntPtr length);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_request(ServerHandle server, ulong peer, ushort typeCode, ref byte data, UIntPtr length, uint timeoutMs, veltix_server_reply_fn onReply, IntPtr userData);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_send_and_wait(ServerHandle server, ulong peer, ushort typeCode, ref byte data, UIntPtr length, uint timeoutMs, out MessageHandle response);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_ping_client(ServerHandle server, ulong peer, uint timeoutMs, out double rttMs);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_broadcast(ServerHandle server, ushort typeCode, ref byte data, UIntPtr length, ulong[] except, UIntPtr exceptCount, out UIntPtr sent);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_dispatch(ServerHandle server, int timeoutMs, out UIntPtr count);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_peers(ServerHandle server, [Out] ulong[] peers, UIntPtr capacity, out UIntPtr count);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_peers_with_tag(ServerHandle server, byte[] name, byte[] value, [Out] ulong[] peers, UIntPtr capacity, out UIntPtr count);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_set_tag(ServerHandle server, ulong peer, byte[] name, byte[] value);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_add_tag(ServerHandle server, ulong peer, byte[] name, byte[] value);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_get_tag(ServerHandle server, ulong peer, byte[] name, [Out] byte[] buffer, UIntPtr bufferSize, out UIntPtr length);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_remove_tag(ServerHandle server, ulong peer, byte[] name);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_peer_address(ServerHandle server, ulong peer, [Out] byte[] buffer, UIntPtr bufferSize, out ushort port);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_peer_stats(ServerHandle server, ulong peer, ref veltix_stats_t stats);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_close_client(ServerHandle server, ulong peer);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_send_to_tag(ServerHandle server, byte[] name, byte[] value, ushort typeCode, ref byte data, UIntPtr length, out UIntPtr sent);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_on_cluster_state(ServerHandle server, veltix_cluster_state_fn fn, IntPtr userData, veltix_free_fn freeUserData);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_cluster_stats(ServerHandle server, ref veltix_cluster_stats_t stats);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int veltix_server_cluster_nodes(ServerHandle server, [Out] veltix_cluster_node_t[] nodes, UIntPtr capacity, out UIntPtr count, out ulong total);
    }
}
