using System;
using System.Runtime.InteropServices;
using Veltix.Interop;

namespace Veltix
{
    /// <summary>How the library calls your handlers.</summary>
    public enum CallbackMode
    {
        /// <summary>
        /// On your thread, inside <c>Dispatch()</c> (Unity's <c>Update()</c>, a
        /// game loop). No library thread ever runs your code. The default.
        /// </summary>
        Dispatch,

        /// <summary>
        /// On the library's worker threads, as messages arrive: handlers must
        /// be thread-safe and must not touch Unity objects.
        /// </summary>
        Workers,
    }

    /// <summary>Heartbeats and TCP keepalive (<c>veltix_liveness_t</c>); all off by default.</summary>
    public sealed class Liveness
    {
        /// <summary>Send a PING after this many ms of silence (0: off).</summary>
        public uint HeartbeatIntervalMs { get; set; }

        /// <summary>Close the connection after this many ms of silence (0: off).</summary>
        public uint HeartbeatTimeoutMs { get; set; }

        /// <summary>TCP keepalive: idle seconds before the first probe (0: off).</summary>
        public uint KeepaliveIdleS { get; set; }

        /// <summary>TCP keepalive: seconds between probes.</summary>
        public uint KeepaliveIntervalS { get; set; }

        /// <summary>TCP keepalive: unanswered probes before the connection is dropped.</summary>
        public uint KeepaliveCount { get; set; }

        internal veltix_liveness_t ToNative()
        {
            return new veltix_liveness_t
            {
                heartbeat_interval_ms = HeartbeatIntervalMs,
                heartbeat_timeout_ms = HeartbeatTimeoutMs,
                keepalive_idle_s = KeepaliveIdleS,
                keepalive_interval_s = KeepaliveIntervalS,
                keepalive_count = KeepaliveCount,
            };
        }
    }

    /// <summary>
    /// A client's settings (<c>veltix_client_config_t</c>). A property left
    /// null keeps the library's default; each means what the header's field
    /// of the same name says.
    /// </summary>
    public sealed class ClientOptions
    {
        /// <summary>Host name or IP literal of the server; default "127.0.0.1".</summary>
        public string Host { get; set; }

        /// <summary>The server's port; default 8080.</summary>
        public ushort? Port { get; set; }

        /// <summary>Dispatch (the default) or Workers.</summary>
        public CallbackMode Mode { get; set; }

        /// <summary>Worker threads in <see cref="CallbackMode.Workers"/> (default 4).</summary>
        public uint? Workers { get; set; }

        /// <summary>Bytes asked of the socket per receive call (1 to 64 MiB); default 8192.</summary>
        public uint? BufferSize { get; set; }
        /// <summary>Largest frame, 15-byte header plus payload, sent or accepted; default 10 MiB.</summary>
        public uint? MaxMessageSize { get; set; }
        /// <summary>Bound on the TCP connect plus the handshake, in ms; default 5000.</summary>
        public uint? HandshakeTimeoutMs { get; set; }

        /// <summary>Reconnection attempts after a failed connect or a lost connection (default 0).</summary>
        public uint? Retry { get; set; }

        /// <summary>Pause between reconnection attempts, in ms; default 1000.</summary>
        public uint? RetryDelayMs { get; set; }
        /// <summary>With a value, the delay doubles after each failed attempt up to it; default fixed delays.</summary>
        public uint? RetryDelayMaxMs { get; set; }
        /// <summary>Draws each delay at random below its value; default false.</summary>
        public bool? RetryJitter { get; set; }
        /// <summary>Bound of one blocking write to a server that stopped reading, in ms; default 10000.</summary>
        public uint? SendTimeoutMs { get; set; }
        /// <summary>Received messages waiting for handlers past which reading pauses; default 4096.</summary>
        public uint? MaxQueuedMessages { get; set; }
        /// <summary>Their payload bytes, likewise; default 16 MiB.</summary>
        public uint? MaxQueuedBytes { get; set; }
        /// <summary>Microseconds a blocked SendAndWait or Ping spins before it sleeps (0: never); default 50.</summary>
        public uint? ReplySpinUs { get; set; }
        /// <summary>Heartbeats and TCP keepalive; off by default.</summary>
        public Liveness Liveness { get; set; }

        /// <summary>The native config; its strings live in <paramref name="strings"/>.</summary>
        internal veltix_client_config_t ToNative(NativeStrings strings)
        {
            var config = new veltix_client_config_t();
            VeltixException.Check(Native.veltix_client_config_init(
                ref config, (UIntPtr)Marshal.SizeOf(typeof(veltix_client_config_t))));
            if (Host != null)
            {
                config.server_addr = strings.Add(Host);
            }
            config.port = Port ?? config.port;
            config.max_workers = Mode == CallbackMode.Dispatch ? 0 : Workers ?? config.max_workers;
            config.buffer_size = BufferSize ?? config.buffer_size;
            config.max_message_size = MaxMessageSize ?? config.max_message_size;
            config.handshake_timeout_ms = HandshakeTimeoutMs ?? config.handshake_timeout_ms;
            config.retry = Retry ?? config.retry;
            config.retry_delay_ms = RetryDelayMs ?? config.retry_delay_ms;
            config.retry_delay_max_ms = RetryDelayMaxMs ?? config.retry_delay_max_ms;
            if (RetryJitter.HasValue)
            {
                config.retry_jitter = (byte)(RetryJitter.Value ? 1 : 0);
            }
            config.send_timeout_ms = SendTimeoutMs ?? config.send_timeout_ms;
            config.max_queued_messages = MaxQueuedMessages ?? config.max_queued_messages;
            config.max_queued_bytes = MaxQueuedBytes ?? config.max_queued_bytes;
            config.reply_spin_us = ReplySpinUs ?? config.reply_spin_us;
            if (Liveness != null)
            {
                config.liveness = Liveness.ToNative();
            }
            return config;
        }
    }

    /// <summary>
    /// A server's settings (<c>veltix_server_config_t</c>). A property left
    /// null keeps the library's default.
    /// </summary>
    public sealed class ServerOptions
    {
        /// <summary>The address to listen on; default "0.0.0.0".</summary>
        public string Host { get; set; }

        /// <summary>The port; default 8080, 0 picks a free one (see <c>Server.Port</c>).</summary>
        public ushort? Port { get; set; }

        /// <summary>Dispatch (the default) or Workers.</summary>
        public CallbackMode Mode { get; set; }

        /// <summary>Worker threads in <see cref="CallbackMode.Workers"/> (default 4).</summary>
        public uint? Workers { get; set; }

        /// <summary>Bytes asked of the socket per receive call (1 to 64 MiB); default 8192.</summary>
        public uint? BufferSize { get; set; }

        /// <summary>Most connections at once, handshakes included; -1 (the default) for no limit.</summary>
        public int? MaxConnection { get; set; }

        /// <summary>Largest frame, 15-byte header plus payload, sent or accepted; default 10 MiB.</summary>
        public uint? MaxMessageSize { get; set; }
        /// <summary>Bound on the TCP connect plus the handshake, in ms; default 5000.</summary>
        public uint? HandshakeTimeoutMs { get; set; }
        /// <summary>Most bytes queued for one client that does not read; a send past it disconnects the client. Default 32 MiB.</summary>
        public uint? MaxOutboundBytes { get; set; }
        /// <summary>Received messages waiting for handlers past which reading pauses; default 4096.</summary>
        public uint? MaxQueuedMessages { get; set; }
        /// <summary>Their payload bytes, likewise; default 16 MiB.</summary>
        public uint? MaxQueuedBytes { get; set; }
        /// <summary>The memory all connections may hold (partial frames, queued messages, queued bytes); past it the largest holder is disconnected. Default 512 MiB.</summary>
        public ulong? MaxMemoryBytes { get; set; }
        /// <summary>Disconnect a client that sent no message for this many ms (0, the default: never).</summary>
        public uint? IdleTimeoutMs { get; set; }
        /// <summary>Microseconds a blocked SendAndWait or Ping spins before it sleeps (0: never); default 50.</summary>
        public uint? ReplySpinUs { get; set; }
        /// <summary>Heartbeats and TCP keepalive; off by default.</summary>
        public Liveness Liveness { get; set; }

        /// <summary>
        /// The PROXY protocol: the load balancers ("10.0.0.5, 192.168.0.0/16")
        /// whose connections start with a PROXY header naming the real client,
        /// which <c>Server.PeerAddress</c> then reports. Null (the default): none.
        /// </summary>
        public string ProxyProtocolFrom { get; set; }

        /// <summary>
        /// Cluster mode: the bus, "redis://host:port"; broadcasts, tag sends and
        /// sends by peer id then reach every node (see docs/cluster.md). Null (the
        /// default): a server alone.
        /// </summary>
        public string ClusterBus { get; set; }

        /// <summary>The cluster's name; default "veltix".</summary>
        public string ClusterName { get; set; }

        /// <summary>This node's id, 1 to 65535, unique per process; 0 (the default) draws one.</summary>
        public ushort? ClusterNodeId { get; set; }

        /// <summary>
        /// I/O threads: event loops that share the connections; default 1, 0 is one
        /// per core. Raise it when one loop keeps a core busy (see the performance guide).
        /// </summary>
        public uint? IoThreads { get; set; }

        /// <summary>The native config; its strings live in <paramref name="strings"/>.</summary>
        internal veltix_server_config_t ToNative(NativeStrings strings)
        {
            var config = new veltix_server_config_t();
            VeltixException.Check(Native.veltix_server_config_init(
                ref config, (UIntPtr)Marshal.SizeOf(typeof(veltix_server_config_t))));
            if (Host != null)
            {
                config.host = strings.Add(Host);
            }
            config.proxy_protocol_from = strings.Add(ProxyProtocolFrom);
            config.cluster_bus = strings.Add(ClusterBus);
            config.cluster_name = strings.Add(ClusterName);
            config.cluster_node_id = ClusterNodeId ?? config.cluster_node_id;
            config.io_threads = IoThreads ?? config.io_threads;
            config.port = Port ?? config.port;
            config.max_workers = Mode == CallbackMode.Dispatch ? 0 : Workers ?? config.max_workers;
            config.buffer_size = BufferSize ?? config.buffer_size;
            config.max_connection = MaxConnection ?? config.max_connection;
            config.max_message_size = MaxMessageSize ?? config.max_message_size;
            config.handshake_timeout_ms = HandshakeTimeoutMs ?? config.handshake_timeout_ms;
            config.max_outbound_bytes = MaxOutboundBytes ?? config.max_outbound_bytes;
            config.max_queued_messages = MaxQueuedMessages ?? config.max_queued_messages;
            config.max_queued_bytes = MaxQueuedBytes ?? config.max_queued_bytes;
            config.max_memory_bytes = MaxMemoryBytes ?? config.max_memory_bytes;
            config.idle_timeout_ms = IdleTimeoutMs ?? config.idle_timeout_ms;
            config.reply_spin_us = ReplySpinUs ?? config.reply_spin_us;
            if (Liveness != null)
            {
                config.liveness = Liveness.ToNative();
            }
            return config;
        }
    }

    /// <summary>
    /// NUL-terminated UTF-8 copies in unmanaged memory, for a config's
    /// strings, kept until <c>veltix_*_new</c> has copied them, then freed
    /// together by <see cref="Dispose"/>.
    /// </summary>
    internal sealed class NativeStrings : IDisposable
    {
        private readonly System.Collections.Generic.List<IntPtr> copies = new System.Collections.Generic.List<IntPtr>();

        /// <summary>A copy of <paramref name="text"/>, or IntPtr.Zero for null.</summary>
        internal IntPtr Add(string text)
        {
            var bytes = Utf8.Encode(text);
            if (bytes == null)
            {
                return IntPtr.Zero;
            }
            var copy = Marshal.AllocHGlobal(bytes.Length);
            copies.Add(copy);
            Marshal.Copy(bytes, 0, copy, bytes.Length);
            return copy;
        }

        public void Dispose()
        {
            copies.ForEach(Marshal.FreeHGlobal);
            copies.Clear();
        }
    }
}
