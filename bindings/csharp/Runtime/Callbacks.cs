// Every callback the library makes into C#. Each kind has one static
// method, marked for IL2CPP, and one delegate made from it once and kept
// for the life of the process. What a registration is for travels in
// `user_data`: a GCHandle to its Registration (or to a request's
// completion), released by `free_user_data` (or by the reply, which comes
// exactly once).
//
// A registration holds the handler and the Sink of its client or server,
// never the client or server object: the library's roots must not keep a
// forgotten client alive, or the finalizer could never free it.
using System;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;

namespace Veltix.Interop
{
    /// <summary>
    /// Where the exceptions of a client's or a server's handlers go. In
    /// dispatch mode, the first one is kept and thrown again by the
    /// <c>Dispatch()</c> that ran the handler; with workers, each goes to
    /// the <c>CallbackError</c> event (or to standard error if nobody
    /// listens).
    /// </summary>
    internal sealed class Sink
    {
        private ExceptionDispatchInfo pending;

        internal Sink(bool dispatched)
        {
            Dispatched = dispatched;
        }

        internal bool Dispatched { get; private set; }

        internal event Action<Exception> CallbackError;

        internal void Fail(Exception error)
        {
            if (Dispatched)
            {
                Interlocked.CompareExchange(ref pending, ExceptionDispatchInfo.Capture(error), null);
                return;
            }
            var handler = CallbackError;
            if (handler != null)
            {
                try
                {
                    handler(error);
                    return;
                }
                catch (Exception inHandler)
                {
                    error = new AggregateException(error, inHandler);
                }
            }
            Console.Error.WriteLine("veltix: a handler threw on a library thread: " + error);
        }

        /// <summary>Throws the exception a handler left during the last dispatch, if any.</summary>
        internal void ThrowPending()
        {
            var error = Interlocked.Exchange(ref pending, null);
            if (error != null)
            {
                error.Throw();
            }
        }
    }

    /// <summary>A handler and the sink of its owner, behind one registration's user_data.</summary>
    internal sealed class Registration
    {
        internal readonly Delegate Handler;
        internal readonly Sink Sink;

        private Registration(Delegate handler, Sink sink)
        {
            Handler = handler;
            Sink = sink;
        }

        /// <summary>A new registration's user_data; <see cref="Callbacks.Free"/> releases it.</summary>
        internal static IntPtr Make(Delegate handler, Sink sink)
        {
            return GCHandle.ToIntPtr(GCHandle.Alloc(new Registration(handler, sink)));
        }

        internal static Registration Of(IntPtr userData)
        {
            return (Registration)GCHandle.FromIntPtr(userData).Target;
        }

        /// <summary>Runs the handler; what it throws goes to the sink, never into native frames.</summary>
        internal void Run<T>(Action<T> call) where T : class
        {
            try
            {
                call((T)(object)Handler);
            }
            catch (Exception error)
            {
                Sink.Fail(error);
            }
        }

        /// <summary>Releases the user_data of a registration that the library refused.</summary>
        internal static void Drop(IntPtr userData)
        {
            GCHandle.FromIntPtr(userData).Free();
        }
    }

    /// <summary>The trampolines: one static method and one kept delegate per kind of callback.</summary>
    internal static class Callbacks
    {
        internal static readonly veltix_free_fn FreeFn = Free;
        internal static readonly veltix_connect_fn ConnectFn = OnConnect;
        internal static readonly veltix_disconnect_fn DisconnectFn = OnDisconnect;
        internal static readonly veltix_message_fn MessageFn = OnMessage;
        internal static readonly veltix_reply_fn ReplyFn = OnReply;
        internal static readonly veltix_server_connect_fn ServerConnectFn = OnServerConnect;
        internal static readonly veltix_server_disconnect_fn ServerDisconnectFn = OnServerDisconnect;
        internal static readonly veltix_server_message_fn ServerMessageFn = OnServerMessage;
        internal static readonly veltix_server_reply_fn ServerReplyFn = OnServerReply;
        internal static readonly veltix_cluster_state_fn ClusterStateFn = OnClusterState;
        internal static readonly veltix_log_fn LogFn = OnLog;

        [MonoPInvokeCallback(typeof(veltix_free_fn))]
        private static void Free(IntPtr userData)
        {
            GCHandle.FromIntPtr(userData).Free();
        }

        [MonoPInvokeCallback(typeof(veltix_connect_fn))]
        private static void OnConnect(IntPtr userData, IntPtr client)
        {
            Registration.Of(userData).Run<Action>(handler => handler());
        }

        [MonoPInvokeCallback(typeof(veltix_disconnect_fn))]
        private static void OnDisconnect(IntPtr userData, IntPtr client, IntPtr state)
        {
            // The detail is this thread's last error during the call.
            var info = new DisconnectInfo(
                (veltix_disconnect_state_t)Marshal.PtrToStructure(state, typeof(veltix_disconnect_state_t)),
                Utf8.Decode(Native.veltix_last_error()));
            Registration.Of(userData).Run<Action<DisconnectInfo>>(handler => handler(info));
        }

        [MonoPInvokeCallback(typeof(veltix_message_fn))]
        private static void OnMessage(IntPtr userData, IntPtr client, IntPtr message)
        {
            Registration.Of(userData).Run<Action<Message>>(handler => Message.Lend(message, handler));
        }

        [MonoPInvokeCallback(typeof(veltix_reply_fn))]
        private static void OnReply(IntPtr userData, IntPtr client, int status, IntPtr reply, IntPtr error)
        {
            Complete(userData, status, reply, error);
        }

        [MonoPInvokeCallback(typeof(veltix_server_connect_fn))]
        private static void OnServerConnect(IntPtr userData, IntPtr server, ulong peer)
        {
            Registration.Of(userData).Run<Action<ulong>>(handler => handler(peer));
        }

        [MonoPInvokeCallback(typeof(veltix_cluster_state_fn))]
        private static void OnClusterState(IntPtr userData, IntPtr server, bool connected)
        {
            Registration.Of(userData).Run<Action<bool>>(handler => handler(connected));
        }

        [MonoPInvokeCallback(typeof(veltix_server_disconnect_fn))]
        private static void OnServerDisconnect(IntPtr userData, IntPtr server, ulong peer, int reason)
        {
            Registration.Of(userData).Run<Action<ulong, DisconnectReason>>(
                handler => handler(peer, (DisconnectReason)reason));
        }

        [MonoPInvokeCallback(typeof(veltix_server_message_fn))]
        private static void OnServerMessage(IntPtr userData, IntPtr server, ulong peer, IntPtr message)
        {
            Registration.Of(userData).Run<Action<ulong, Message>>(
                handler => Message.Lend(message, lent => handler(peer, lent)));
        }

        [MonoPInvokeCallback(typeof(veltix_server_reply_fn))]
        private static void OnServerReply(IntPtr userData, IntPtr server, ulong peer, int status, IntPtr reply, IntPtr error)
        {
            Complete(userData, status, reply, error);
        }

        [MonoPInvokeCallback(typeof(veltix_log_fn))]
        private static void OnLog(IntPtr userData, int level, IntPtr message)
        {
            var text = Utf8.Decode(message);
            Registration.Of(userData).Run<Action<LogLevel, string>>(handler => handler((LogLevel)level, text));
        }

        /// <summary>A request's user_data: its completion, released by <see cref="Complete"/>.</summary>
        internal static IntPtr Pending(TaskCompletionSource<Message> completion)
        {
            return GCHandle.ToIntPtr(GCHandle.Alloc(completion));
        }

        /// <summary>Settles a request's task with its one outcome, and releases its user_data.</summary>
        private static void Complete(IntPtr userData, int status, IntPtr reply, IntPtr error)
        {
            var handle = GCHandle.FromIntPtr(userData);
            var completion = (TaskCompletionSource<Message>)handle.Target;
            handle.Free();
            if (status == Native.VELTIX_OK)
            {
                completion.TrySetResult(Message.Copy(reply));
            }
            else
            {
                completion.TrySetException(new VeltixException((Status)status, Utf8.Decode(error)));
            }
        }
    }
}
