using System;
using System.Collections.Generic;
using System.Threading.Tasks;
using Veltix.Interop;

namespace Veltix
{
    /// <summary>
    /// A Veltix server (<c>veltix_server_t</c>). Clients are known by their
    /// peer id, a <c>ulong</c> never reused. Its handlers run where
    /// <see cref="ServerOptions.Mode"/> says: by default on your thread, inside
    /// <see cref="Dispatch"/>. Dispose it to close every connection and free it.
    /// </summary>
    public sealed class Server : IDisposable
    {
        private readonly ServerHandle handle;
        private readonly Sink sink;
        private readonly Lifecycle lifecycle = new Lifecycle();

        /// <summary>A server with <paramref name="options"/> (null: every default); <see cref="Start"/> listens.</summary>
        public Server(ServerOptions options = null)
        {
            options = options ?? new ServerOptions();
            using (var strings = new NativeStrings())
            {
                var config = options.ToNative(strings);
                ServerHandle made;
                VeltixException.Check(Native.veltix_server_new(ref config, out made));
                handle = made;
            }
            sink = new Sink(options.Mode == CallbackMode.Dispatch);
            Calls.Register(new Action<ulong>(lifecycle.OnConnected), sink, userData =>
                Native.veltix_server_on_connect(handle, Callbacks.ServerConnectFn, userData, Callbacks.FreeFn));
            Calls.Register(new Action<ulong, DisconnectReason>(lifecycle.OnDisconnected), sink, userData =>
                Native.veltix_server_on_disconnect(handle, Callbacks.ServerDisconnectFn, userData, Callbacks.FreeFn));
            Calls.Register(new Action<ulong, Message>(lifecycle.OnMessage), sink, userData =>
                Native.veltix_server_on_recv(handle, Callbacks.ServerMessageFn, userData, Callbacks.FreeFn));
            Calls.Register(new Action<bool>(lifecycle.OnClusterState), sink, userData =>
                Native.veltix_server_on_cluster_state(handle, Callbacks.ClusterStateFn, userData, Callbacks.FreeFn));
        }

        /// <summary>Cluster mode: the bus was reached (true) or lost (false).</summary>
        public event Action<bool> ClusterStateChanged
        {
            add { lifecycle.ClusterStateChanged += value; }
            remove { lifecycle.ClusterStateChanged -= value; }
        }

        /// <summary>A client completed its handshake: its peer id.</summary>
        public event Action<ulong> ClientConnected
        {
            add { lifecycle.ClientConnected += value; }
            remove { lifecycle.ClientConnected -= value; }
        }

        /// <summary>A connected client left: its peer id and why.</summary>
        public event Action<ulong, DisconnectReason> ClientDisconnected
        {
            add { lifecycle.ClientDisconnected += value; }
            remove { lifecycle.ClientDisconnected -= value; }
        }

        /// <summary>Every message no route takes, with its sender's peer id.</summary>
        public event Action<ulong, Message> MessageReceived
        {
            add { lifecycle.MessageReceived += value; }
            remove { lifecycle.MessageReceived -= value; }
        }

        /// <summary>As <see cref="Client.CallbackError"/>.</summary>
        public event Action<Exception> CallbackError
        {
            add { sink.CallbackError += value; }
            remove { sink.CallbackError -= value; }
        }

        /// <summary>The port it listens on (the one picked, for port 0); 0 before Start.</summary>
        public ushort Port
        {
            get { return Native.veltix_server_port(handle); }
        }

        /// <summary>How many clients are connected.</summary>
        public int ClientCount
        {
            get { return checked((int)Native.veltix_server_client_count(handle).ToUInt64()); }
        }

        /// <summary>Starts listening; returns the port.</summary>
        public ushort Start()
        {
            VeltixException.Check(Native.veltix_server_start(handle));
            return Port;
        }

        /// <summary>Stops listening and closes every connection; the server stays usable for queries until disposed.</summary>
        public void Close()
        {
            VeltixException.Check(Native.veltix_server_close(handle));
        }

        /// <summary>
        /// Drains the server for a rolling deploy: it stops listening, then closes its
        /// connections <paramref name="peersPerSecond"/> at a time (0: all at once),
        /// so that clients that retry come back through the load balancer to other nodes.
        /// </summary>
        public void Drain(uint peersPerSecond)
        {
            VeltixException.Check(Native.veltix_server_drain(handle, peersPerSecond));
        }

        /// <summary>Sends messages of <paramref name="type"/> to <paramref name="handler"/> instead of MessageReceived.</summary>
        public void Route(ushort type, Action<ulong, Message> handler)
        {
            if (handler == null)
            {
                throw new ArgumentNullException("handler");
            }
            Calls.Register(handler, sink, userData =>
                Native.veltix_server_route(handle, type, Callbacks.ServerMessageFn, userData, Callbacks.FreeFn));
        }

        /// <summary>Ends the route of <paramref name="type"/>.</summary>
        public void Unroute(ushort type)
        {
            VeltixException.Check(Native.veltix_server_unroute(handle, type));
        }

        /// <summary>Sends <paramref name="payload"/> to <paramref name="peer"/>.</summary>
        public void Send(ulong peer, ushort type, byte[] payload)
        {
            if (payload == null)
            {
                throw new ArgumentNullException("payload");
            }
            Send(peer, type, payload, 0, payload.Length);
        }

        /// <summary>Sends <paramref name="count"/> bytes of <paramref name="buffer"/> from <paramref name="offset"/>.</summary>
        public void Send(ulong peer, ushort type, byte[] buffer, int offset, int count)
        {
            int start;
            var bytes = Payloads.Checked(buffer, offset, count, out start);
            VeltixException.Check(Native.veltix_server_send(handle, peer, type, ref bytes[start], (UIntPtr)count));
        }

        /// <summary>Sends <paramref name="text"/>, UTF-8 encoded.</summary>
        public void Send(ulong peer, ushort type, string text)
        {
            Send(peer, type, Utf8.Payload(text));
        }

        /// <summary>Answers <paramref name="to"/> from <paramref name="peer"/>, inside its handler or with a clone.</summary>
        public void Reply(ulong peer, Message to, ushort type, byte[] payload)
        {
            if (to == null)
            {
                throw new ArgumentNullException("to");
            }
            int start;
            var bytes = Payloads.Whole(payload, out start);
            VeltixException.Check(Native.veltix_server_reply(handle, peer, to.Pointer, type, ref bytes[start], (UIntPtr)payload.Length));
        }

        /// <summary>Answers with <paramref name="text"/>, UTF-8 encoded.</summary>
        public void Reply(ulong peer, Message to, ushort type, string text)
        {
            Reply(peer, to, type, Utf8.Payload(text));
        }

        /// <summary>Sends a request to <paramref name="peer"/>; completes as <see cref="Client.RequestAsync(ushort, byte[], uint)"/>.</summary>
        public Task<Message> RequestAsync(ulong peer, ushort type, byte[] payload, uint timeoutMs = 5000)
        {
            int start;
            var bytes = Payloads.Whole(payload, out start);
            return Calls.Request(userData => Native.veltix_server_request(
                handle, peer, type, ref bytes[start], (UIntPtr)payload.Length, timeoutMs, Callbacks.ServerReplyFn, userData));
        }

        /// <summary>As RequestAsync with a byte payload, with UTF-8 text.</summary>
        public Task<Message> RequestAsync(ulong peer, ushort type, string text, uint timeoutMs = 5000)
        {
            return RequestAsync(peer, type, Utf8.Payload(text), timeoutMs);
        }

        /// <summary>
        /// Sends a request to <paramref name="peer"/> and blocks for its reply.
        /// Not from the thread that dispatches that client (it could not answer).
        /// </summary>
        public Message SendAndWait(ulong peer, ushort type, byte[] payload, uint timeoutMs = 5000)
        {
            int start;
            var bytes = Payloads.Whole(payload, out start);
            MessageHandle reply;
            VeltixException.Check(Native.veltix_server_send_and_wait(
                handle, peer, type, ref bytes[start], (UIntPtr)payload.Length, timeoutMs, out reply));
            return Message.Take(reply);
        }

        /// <summary>As SendAndWait with a byte payload, with UTF-8 text.</summary>
        public Message SendAndWait(ulong peer, ushort type, string text, uint timeoutMs = 5000)
        {
            return SendAndWait(peer, type, Utf8.Payload(text), timeoutMs);
        }

        /// <summary>Pings <paramref name="peer"/>; the round trip in milliseconds.</summary>
        public double PingClient(ulong peer, uint timeoutMs = 5000)
        {
            double rtt;
            VeltixException.Check(Native.veltix_server_ping_client(handle, peer, timeoutMs, out rtt));
            return rtt;
        }

        /// <summary>Sends to every connected client but <paramref name="except"/>; returns how many it was sent to.</summary>
        public int Broadcast(ushort type, byte[] payload, params ulong[] except)
        {
            int start;
            var bytes = Payloads.Whole(payload, out start);
            except = except ?? new ulong[0];
            UIntPtr sent;
            VeltixException.Check(Native.veltix_server_broadcast(
                handle, type, ref bytes[start], (UIntPtr)payload.Length, except, (UIntPtr)except.Length, out sent));
            return checked((int)sent.ToUInt64());
        }

        /// <summary>As Broadcast with a byte payload, with UTF-8 text.</summary>
        public int Broadcast(ushort type, string text, params ulong[] except)
        {
            return Broadcast(type, Utf8.Payload(text), except);
        }

        /// <summary>As <see cref="Client.Dispatch"/>.</summary>
        public int Dispatch(int timeoutMs = 0)
        {
            UIntPtr count;
            var status = Native.veltix_server_dispatch(handle, timeoutMs, out count);
            return Calls.Dispatched(sink, status, count);
        }

        /// <summary>The connected clients' peer ids, in increasing order.</summary>
        public ulong[] Peers()
        {
            return IdList((ids, capacity) =>
            {
                UIntPtr count;
                VeltixException.Check(Native.veltix_server_peers(handle, ids, capacity, out count));
                return count;
            });
        }

        /// <summary>The peers whose tag <paramref name="name"/> is <paramref name="value"/> (any value if null).</summary>
        public ulong[] PeersWithTag(string name, string value = null)
        {
            var nameBytes = NotNull(name, "name");
            var valueBytes = Utf8.Encode(value);
            return IdList((ids, capacity) =>
            {
                UIntPtr count;
                VeltixException.Check(Native.veltix_server_peers_with_tag(handle, nameBytes, valueBytes, ids, capacity, out count));
                return count;
            });
        }

        /// <summary>Sets tag <paramref name="name"/> of <paramref name="peer"/> to <paramref name="value"/>.</summary>
        public void SetTag(ulong peer, string name, string value)
        {
            VeltixException.Check(Native.veltix_server_set_tag(handle, peer, NotNull(name, "name"), Utf8.Encode(value)));
        }

        /// <summary>Sets the tag unless the peer has it; false if it had (its value unchanged).</summary>
        public bool AddTag(ulong peer, string name, string value)
        {
            var status = Native.veltix_server_add_tag(handle, peer, NotNull(name, "name"), Utf8.Encode(value));
            if (status == Native.VELTIX_ERR_ALREADY_EXISTS)
            {
                return false;
            }
            VeltixException.Check(status);
            return true;
        }

        /// <summary>The value of tag <paramref name="name"/> of <paramref name="peer"/>; null if it is not set.</summary>
        public string GetTag(ulong peer, string name)
        {
            var nameBytes = NotNull(name, "name");
            while (true)
            {
                UIntPtr length;
                var status = Native.veltix_server_get_tag(handle, peer, nameBytes, null, UIntPtr.Zero, out length);
                if (status == Native.VELTIX_ERR_NOT_FOUND)
                {
                    return null;
                }
                VeltixException.Check(status);
                var buffer = new byte[checked((int)length.ToUInt64() + 1)];
                status = Native.veltix_server_get_tag(handle, peer, nameBytes, buffer, (UIntPtr)buffer.Length, out length);
                if (status == Native.VELTIX_ERR_BUFFER_TOO_SMALL)
                {
                    continue; // Set to a longer value in between: ask again.
                }
                if (status == Native.VELTIX_ERR_NOT_FOUND)
                {
                    return null;
                }
                VeltixException.Check(status);
                return Utf8.Decode(buffer, checked((int)length.ToUInt64()));
            }
        }

        /// <summary>Removes tag <paramref name="name"/> of <paramref name="peer"/>; false if it was not set.</summary>
        public bool RemoveTag(ulong peer, string name)
        {
            var status = Native.veltix_server_remove_tag(handle, peer, NotNull(name, "name"));
            if (status == Native.VELTIX_ERR_NOT_FOUND)
            {
                return false;
            }
            VeltixException.Check(status);
            return true;
        }

        /// <summary>The IP address and port <paramref name="peer"/> connected from.</summary>
        public System.Net.IPEndPoint PeerAddress(ulong peer)
        {
            var buffer = new byte[64];
            ushort port;
            VeltixException.Check(Native.veltix_server_peer_address(handle, peer, buffer, (UIntPtr)buffer.Length, out port));
            var text = Utf8.Decode(buffer, Array.IndexOf(buffer, (byte)0));
            return new System.Net.IPEndPoint(System.Net.IPAddress.Parse(text), port);
        }

        /// <summary>The counters of <paramref name="peer"/>'s connection.</summary>
        public Stats PeerStats(ulong peer)
        {
            var stats = Stats.Empty();
            VeltixException.Check(Native.veltix_server_peer_stats(handle, peer, ref stats));
            return new Stats(stats);
        }

        /// <summary>Disconnects <paramref name="peer"/>.</summary>
        public void CloseClient(ulong peer)
        {
            VeltixException.Check(Native.veltix_server_close_client(handle, peer));
        }

        /// <summary>
        /// Sends to every client whose tag <paramref name="name"/> is <paramref name="value"/>
        /// (null: any value), on every node in cluster mode; returns how many of this
        /// server's clients it was sent to.
        /// </summary>
        public int SendToTag(string name, string value, ushort type, byte[] payload)
        {
            int start;
            var bytes = Payloads.Whole(payload, out start);
            UIntPtr sent;
            VeltixException.Check(Native.veltix_server_send_to_tag(handle, NotNull(name, "name"), Utf8.Encode(value),
                type, ref bytes[start], (UIntPtr)payload.Length, out sent));
            return checked((int)sent.ToUInt64());
        }

        /// <summary>As SendToTag with a byte payload, with UTF-8 text.</summary>
        public int SendToTag(string name, string value, ushort type, string text)
        {
            return SendToTag(name, value, type, Utf8.Payload(text));
        }

        /// <summary>Cluster mode: the bus counters.</summary>
        public ClusterStats GetClusterStats()
        {
            var stats = Veltix.ClusterStats.Empty();
            VeltixException.Check(Native.veltix_server_cluster_stats(handle, ref stats));
            return new ClusterStats(stats);
        }

        /// <summary>Cluster mode: every live node and its clients, in node order; <paramref name="total"/> is their sum.</summary>
        public ClusterNode[] ClusterNodes(out ulong total)
        {
            for (;;)
            {
                UIntPtr count;
                VeltixException.Check(Native.veltix_server_cluster_nodes(handle, null, UIntPtr.Zero, out count, out total));
                var nodes = new veltix_cluster_node_t[(int)count.ToUInt64() + 4];
                VeltixException.Check(Native.veltix_server_cluster_nodes(handle, nodes, (UIntPtr)nodes.Length, out count, out total));
                if ((int)count.ToUInt64() <= nodes.Length)
                {
                    var found = new ClusterNode[(int)count.ToUInt64()];
                    for (var i = 0; i < found.Length; i++)
                    {
                        found[i] = new ClusterNode(nodes[i]);
                    }
                    return found;
                }
            }
        }

        /// <summary>Closes every connection and frees the server; inside a handler, after Dispatch returns.</summary>
        public void Dispose()
        {
            handle.Dispose();
        }

        /// <summary>Its port, or that it is disposed.</summary>
        public override string ToString()
        {
            return handle.IsClosed ? "veltix server (disposed)" : "veltix server on port " + Port;
        }

        private static byte[] NotNull(string text, string name)
        {
            if (text == null)
            {
                throw new ArgumentNullException(name);
            }
            return Utf8.Encode(text);
        }

        /// <summary>The ids <paramref name="list"/> writes, asking for the count first.</summary>
        private static ulong[] IdList(Func<ulong[], UIntPtr, UIntPtr> list)
        {
            while (true)
            {
                var count = checked((int)list(null, UIntPtr.Zero).ToUInt64());
                var ids = new ulong[count + 16];
                var found = checked((int)list(ids, (UIntPtr)ids.Length).ToUInt64());
                if (found <= ids.Length)
                {
                    Array.Resize(ref ids, found);
                    return ids;
                }
            }
        }

        /// <summary>The server's own handlers: its events, kept apart from the Server.</summary>
        private sealed class Lifecycle
        {
            internal event Action<ulong> ClientConnected;
            internal event Action<ulong, DisconnectReason> ClientDisconnected;
            internal event Action<ulong, Message> MessageReceived;
            internal event Action<bool> ClusterStateChanged;

            internal void OnClusterState(bool connected)
            {
                var handler = ClusterStateChanged;
                if (handler != null)
                {
                    handler(connected);
                }
            }

            internal void OnConnected(ulong peer)
            {
                var handler = ClientConnected;
                if (handler != null)
                {
                    handler(peer);
                }
            }

            internal void OnDisconnected(ulong peer, DisconnectReason reason)
            {
                var handler = ClientDisconnected;
                if (handler != null)
                {
                    handler(peer, reason);
                }
            }

            internal void OnMessage(ulong peer, Message message)
            {
                var handler = MessageReceived;
                if (handler != null)
                {
                    handler(peer, message);
                }
            }
        }
    }
}
