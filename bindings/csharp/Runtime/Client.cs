using System;
using System.Threading;
using System.Threading.Tasks;
using Veltix.Interop;

namespace Veltix
{
    /// <summary>
    /// A Veltix client (<c>veltix_client_t</c>). Its handlers (the events,
    /// routes and request completions) run where <see cref="ClientOptions.Mode"/>
    /// says: by default on your thread, inside <see cref="Dispatch"/>.
    /// Dispose it to disconnect and free it; a client nothing refers to
    /// any more is freed by its finalizer, unless one of its handlers
    /// refers to it.
    /// </summary>
    public sealed class Client : IDisposable
    {
        private readonly ClientHandle handle;
        private readonly Sink sink;
        private readonly Lifecycle lifecycle = new Lifecycle();

        /// <summary>A client with <paramref name="options"/> (null: every default).</summary>
        public Client(ClientOptions options = null)
        {
            options = options ?? new ClientOptions();
            using (var strings = new NativeStrings())
            {
                var config = options.ToNative(strings);
                ClientHandle made;
                VeltixException.Check(Native.veltix_client_new(ref config, out made));
                handle = made;
            }
            sink = new Sink(options.Mode == CallbackMode.Dispatch);
            Calls.Register(new Action(lifecycle.OnConnected), sink, userData =>
                Native.veltix_client_on_connect(handle, Callbacks.ConnectFn, userData, Callbacks.FreeFn));
            Calls.Register(new Action<DisconnectInfo>(lifecycle.OnDisconnected), sink, userData =>
                Native.veltix_client_on_disconnect(handle, Callbacks.DisconnectFn, userData, Callbacks.FreeFn));
            Calls.Register(new Action<Message>(lifecycle.OnMessage), sink, userData =>
                Native.veltix_client_on_recv(handle, Callbacks.MessageFn, userData, Callbacks.FreeFn));
        }

        /// <summary>Each time a connection completes its handshake (reconnections too).</summary>
        public event Action Connected
        {
            add { lifecycle.Connected += value; }
            remove { lifecycle.Connected -= value; }
        }

        /// <summary>When a connection ends or an attempt fails; see <see cref="DisconnectInfo"/>.</summary>
        public event Action<DisconnectInfo> Disconnected
        {
            add { lifecycle.Disconnected += value; }
            remove { lifecycle.Disconnected -= value; }
        }

        /// <summary>Every message no route takes.</summary>
        public event Action<Message> MessageReceived
        {
            add { lifecycle.MessageReceived += value; }
            remove { lifecycle.MessageReceived -= value; }
        }

        /// <summary>
        /// In <see cref="CallbackMode.Workers"/>, what a handler threw (on the
        /// worker's thread). In dispatch mode, <see cref="Dispatch"/> throws it instead.
        /// </summary>
        public event Action<Exception> CallbackError
        {
            add { sink.CallbackError += value; }
            remove { sink.CallbackError -= value; }
        }

        /// <summary>Whether the handshake is done and the connection open.</summary>
        public bool IsConnected
        {
            get { return Native.veltix_client_is_connected(handle); }
        }

        /// <summary>The connection's counters.</summary>
        public Stats Stats
        {
            get
            {
                var stats = Stats.Empty();
                VeltixException.Check(Native.veltix_client_stats(handle, ref stats));
                return new Stats(stats);
            }
        }

        /// <summary>Sends messages of <paramref name="type"/> to <paramref name="handler"/> instead of MessageReceived.</summary>
        public void Route(ushort type, Action<Message> handler)
        {
            if (handler == null)
            {
                throw new ArgumentNullException("handler");
            }
            Calls.Register(handler, sink, userData =>
                Native.veltix_client_route(handle, type, Callbacks.MessageFn, userData, Callbacks.FreeFn));
        }

        /// <summary>Ends the route of <paramref name="type"/>.</summary>
        public void Unroute(ushort type)
        {
            VeltixException.Check(Native.veltix_client_unroute(handle, type));
        }

        /// <summary>Connects and waits for the handshake (at most the handshake timeout).</summary>
        public void Connect()
        {
            VeltixException.Check(Native.veltix_client_connect(handle));
        }

        /// <summary>
        /// Connects in the background. The task completes when the handshake
        /// is done, or fails (<see cref="Status.ConnectFailed"/>, with the cause)
        /// when the client gives up. In dispatch mode it completes inside
        /// <see cref="Dispatch"/>, so keep dispatching while you await it.
        /// </summary>
        public Task ConnectAsync()
        {
            var completion = lifecycle.StartConnecting();
            var status = Native.veltix_client_connect_async(handle);
            if (status != Native.VELTIX_OK)
            {
                lifecycle.FailConnecting(VeltixException.FromLastError(status));
            }
            return completion;
        }

        /// <summary>Disconnects; Disconnected follows (inside Dispatch, in dispatch mode).</summary>
        public void Disconnect()
        {
            VeltixException.Check(Native.veltix_client_disconnect(handle));
        }

        /// <summary>Sends <paramref name="payload"/> as a message of <paramref name="type"/>.</summary>
        public void Send(ushort type, byte[] payload)
        {
            if (payload == null)
            {
                throw new ArgumentNullException("payload");
            }
            Send(type, payload, 0, payload.Length);
        }

        /// <summary>Sends <paramref name="count"/> bytes of <paramref name="buffer"/> from <paramref name="offset"/>.</summary>
        public void Send(ushort type, byte[] buffer, int offset, int count)
        {
            int start;
            var bytes = Payloads.Checked(buffer, offset, count, out start);
            VeltixException.Check(Native.veltix_client_send(handle, type, ref bytes[start], (UIntPtr)count));
        }

        /// <summary>Sends <paramref name="text"/>, UTF-8 encoded.</summary>
        public void Send(ushort type, string text)
        {
            Send(type, Utf8.Payload(text));
        }

        /// <summary>
        /// Answers <paramref name="to"/> (a request) with a message of
        /// <paramref name="type"/>: inside the handler that received it, or
        /// with a <see cref="Message.Clone"/>.
        /// </summary>
        public void Reply(Message to, ushort type, byte[] payload)
        {
            if (to == null)
            {
                throw new ArgumentNullException("to");
            }
            int start;
            var bytes = Payloads.Whole(payload, out start);
            VeltixException.Check(Native.veltix_client_reply(handle, to.Pointer, type, ref bytes[start], (UIntPtr)payload.Length));
        }

        /// <summary>Answers <paramref name="to"/> with <paramref name="text"/>, UTF-8 encoded.</summary>
        public void Reply(Message to, ushort type, string text)
        {
            Reply(to, type, Utf8.Payload(text));
        }

        /// <summary>
        /// Sends a request; the task completes with its reply, or fails with
        /// <see cref="Status.Timeout"/> after <paramref name="timeoutMs"/> or
        /// <see cref="Status.Closed"/> if the connection ends first. In
        /// dispatch mode it completes inside <see cref="Dispatch"/>; the
        /// code after an <c>await</c> then runs as the awaiting context
        /// decides (Unity's: on the main thread).
        /// </summary>
        public Task<Message> RequestAsync(ushort type, byte[] payload, uint timeoutMs = 5000)
        {
            int start;
            var bytes = Payloads.Whole(payload, out start);
            return Calls.Request(userData => Native.veltix_client_request(
                handle, type, ref bytes[start], (UIntPtr)payload.Length, timeoutMs, Callbacks.ReplyFn, userData));
        }

        /// <summary>As <see cref="RequestAsync(ushort, byte[], uint)"/>, with a UTF-8 payload.</summary>
        public Task<Message> RequestAsync(ushort type, string text, uint timeoutMs = 5000)
        {
            return RequestAsync(type, Utf8.Payload(text), timeoutMs);
        }

        /// <summary>
        /// Sends a request and blocks this thread until its reply comes, at
        /// most <paramref name="timeoutMs"/>. Messages that arrive meanwhile
        /// wait for their handlers.
        /// </summary>
        public Message SendAndWait(ushort type, byte[] payload, uint timeoutMs = 5000)
        {
            int start;
            var bytes = Payloads.Whole(payload, out start);
            MessageHandle reply;
            VeltixException.Check(Native.veltix_client_send_and_wait(
                handle, type, ref bytes[start], (UIntPtr)payload.Length, timeoutMs, out reply));
            return Message.Take(reply);
        }

        /// <summary>As <see cref="SendAndWait(ushort, byte[], uint)"/>, with a UTF-8 payload.</summary>
        public Message SendAndWait(ushort type, string text, uint timeoutMs = 5000)
        {
            return SendAndWait(type, Utf8.Payload(text), timeoutMs);
        }

        /// <summary>Pings the server and blocks for the answer; the round trip in milliseconds.</summary>
        public double Ping(uint timeoutMs = 5000)
        {
            double rtt;
            VeltixException.Check(Native.veltix_client_ping(handle, timeoutMs, out rtt));
            return rtt;
        }

        /// <summary>
        /// Runs the handlers that are due, waiting up to <paramref name="timeoutMs"/>
        /// for one (0: never waits; -1: without end). Returns how many ran. If
        /// a handler threw, the others still ran, and the first exception is
        /// thrown here. Dispatch mode only.
        /// </summary>
        public int Dispatch(int timeoutMs = 0)
        {
            UIntPtr count;
            var status = Native.veltix_client_dispatch(handle, timeoutMs, out count);
            return Calls.Dispatched(sink, status, count);
        }

        /// <summary>Starts a reconnection loop of at most <paramref name="maxAttempts"/> attempts.</summary>
        public void Retry(int maxAttempts)
        {
            VeltixException.Check(Native.veltix_client_retry(handle, maxAttempts));
        }

        /// <summary>Stops a reconnection loop (a permanent Disconnected follows).</summary>
        public void StopRetry()
        {
            VeltixException.Check(Native.veltix_client_stop_retry(handle));
        }

        /// <summary>
        /// Blocks until the client is neither connected nor reconnecting, at
        /// most <paramref name="timeoutMs"/> (-1: without end); false on timeout.
        /// </summary>
        public bool WaitUntilClosed(int timeoutMs)
        {
            var status = Native.veltix_client_wait_until_closed(handle, timeoutMs);
            if (status == Native.VELTIX_ERR_TIMEOUT)
            {
                return false;
            }
            VeltixException.Check(status);
            return true;
        }

        /// <summary>
        /// Disconnects and frees the client: pending requests fail with
        /// <see cref="Status.Closed"/>. Called inside one of its handlers, the
        /// memory is freed when the running Dispatch returns.
        /// </summary>
        public void Dispose()
        {
            handle.Dispose();
            lifecycle.FailConnecting(new VeltixException(Status.Closed, "the client was disposed"));
        }

        /// <summary>Whether it is disposed.</summary>
        public override string ToString()
        {
            return handle.IsClosed ? "veltix client (disposed)" : "veltix client";
        }

        /// <summary>
        /// The client's own handlers of its lifecycle: its events, and the
        /// pending ConnectAsync. Kept apart from the Client, which the
        /// library's registrations must not hold.
        /// </summary>
        private sealed class Lifecycle
        {
            private TaskCompletionSource<bool> connecting;

            internal event Action Connected;
            internal event Action<DisconnectInfo> Disconnected;
            internal event Action<Message> MessageReceived;

            internal Task StartConnecting()
            {
                var completion = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
                var previous = Interlocked.Exchange(ref connecting, completion);
                if (previous != null)
                {
                    previous.TrySetException(new VeltixException(Status.ConnectFailed, "a newer ConnectAsync replaced it"));
                }
                return completion.Task;
            }

            internal void FailConnecting(Exception error)
            {
                var completion = Interlocked.Exchange(ref connecting, null);
                if (completion != null)
                {
                    completion.TrySetException(error);
                }
            }

            internal void OnConnected()
            {
                var completion = Interlocked.Exchange(ref connecting, null);
                if (completion != null)
                {
                    completion.TrySetResult(true);
                }
                var handler = Connected;
                if (handler != null)
                {
                    handler();
                }
            }

            internal void OnDisconnected(DisconnectInfo info)
            {
                if (info.Permanent)
                {
                    FailConnecting(new VeltixException(Status.ConnectFailed, info.Detail));
                }
                var handler = Disconnected;
                if (handler != null)
                {
                    handler(info);
                }
            }

            internal void OnMessage(Message message)
            {
                var handler = MessageReceived;
                if (handler != null)
                {
                    handler(message);
                }
            }
        }
    }
}
