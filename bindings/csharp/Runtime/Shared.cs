using System;
using System.Threading.Tasks;
using Veltix.Interop;

namespace Veltix
{
    /// <summary>What a client's <c>Disconnected</c> event receives (<c>veltix_disconnect_state_t</c>).</summary>
    public sealed class DisconnectInfo
    {
        internal DisconnectInfo(veltix_disconnect_state_t state, string detail)
        {
            Permanent = state.permanent != 0;
            Attempt = state.attempt;
            RetryMax = state.retry_max;
            Reason = (DisconnectReason)state.reason;
            NextDelayMs = state.next_delay_ms;
            Detail = detail;
        }

        /// <summary>True when no reconnection attempt follows.</summary>
        public bool Permanent { get; private set; }

        /// <summary>0 for the disconnection itself, else the failed attempt's number.</summary>
        public uint Attempt { get; private set; }

        /// <summary>The client's <c>Retry</c>.</summary>
        public uint RetryMax { get; private set; }

        /// <summary>Why the connection ended.</summary>
        public DisconnectReason Reason { get; private set; }

        /// <summary>Milliseconds until the next attempt, when one follows.</summary>
        public uint NextDelayMs { get; private set; }

        /// <summary>What went wrong, in the library's words ("" for a manual disconnect).</summary>
        public string Detail { get; private set; }

        /// <summary>The reason, the attempt and the detail.</summary>
        public override string ToString()
        {
            return string.Format("{0} (attempt {1}/{2}, {3}){4}", Reason, Attempt, RetryMax,
                Permanent ? "permanent" : "retrying", Detail.Length > 0 ? ": " + Detail : "");
        }
    }

    /// <summary>A connection's counters (<c>veltix_stats_t</c>).</summary>
    public struct Stats
    {
        internal Stats(veltix_stats_t stats)
        {
            BytesIn = stats.bytes_in;
            BytesOut = stats.bytes_out;
            FramesIn = stats.frames_in;
            FramesOut = stats.frames_out;
            LastRttMs = stats.last_rtt_ms;
            MsSinceLastFrame = stats.ms_since_last_frame;
        }

        /// <summary>Bytes received.</summary>
        public ulong BytesIn { get; private set; }
        /// <summary>Bytes sent.</summary>
        public ulong BytesOut { get; private set; }
        /// <summary>Frames received, PINGs and PONGs included.</summary>
        public ulong FramesIn { get; private set; }
        /// <summary>Frames sent, PINGs and PONGs included.</summary>
        public ulong FramesOut { get; private set; }

        /// <summary>The last ping's round trip in ms; negative before the first.</summary>
        public double LastRttMs { get; private set; }

        /// <summary>Milliseconds since the last frame was received.</summary>
        public ulong MsSinceLastFrame { get; private set; }

        internal static veltix_stats_t Empty()
        {
            return new veltix_stats_t { struct_size = (uint)System.Runtime.InteropServices.Marshal.SizeOf(typeof(veltix_stats_t)) };
        }
    }

    /// <summary>The library's version and its log.</summary>
    public static class Library
    {
        private static readonly Sink LogSink = new Sink(false);

        /// <summary>The version libveltix reports, e.g. "0.1.0".</summary>
        public static string Version
        {
            get { return Utf8.Decode(Native.veltix_version()); }
        }

        /// <summary>
        /// Sends the library's log lines up to <paramref name="maxLevel"/> to
        /// <paramref name="handler"/> (null: back to standard error). It is
        /// called on the library's threads, any of them, so it must be
        /// thread-safe (in Unity, Debug.Log is).
        /// </summary>
        public static void SetLogger(Action<LogLevel, string> handler, LogLevel maxLevel)
        {
            if (handler == null)
            {
                Native.veltix_set_logger(null, IntPtr.Zero, (int)maxLevel, null);
                return;
            }
            Native.veltix_set_logger(Callbacks.LogFn, Registration.Make(handler, LogSink), (int)maxLevel, Callbacks.FreeFn);
        }
    }

    /// <summary>Payload arguments as the native calls take them.</summary>
    internal static class Payloads
    {
        /// <summary>What an empty payload points at: never read, but a valid address.</summary>
        internal static readonly byte[] Empty = new byte[1];

        /// <summary>
        /// The array and index whose address to pass for <paramref name="count"/>
        /// bytes of <paramref name="buffer"/> at <paramref name="offset"/>.
        /// </summary>
        internal static byte[] Checked(byte[] buffer, int offset, int count, out int start)
        {
            if (buffer == null)
            {
                throw new ArgumentNullException("buffer");
            }
            if (offset < 0 || count < 0 || offset > buffer.Length - count)
            {
                throw new ArgumentOutOfRangeException("count", "offset and count must lie within the buffer");
            }
            start = count == 0 ? 0 : offset;
            return count == 0 ? Empty : buffer;
        }

        /// <summary>As <see cref="Checked"/>, for the whole of <paramref name="payload"/>.</summary>
        internal static byte[] Whole(byte[] payload, out int start)
        {
            if (payload == null)
            {
                throw new ArgumentNullException("payload");
            }
            return Checked(payload, 0, payload.Length, out start);
        }
    }

    /// <summary>What a client and a server do alike.</summary>
    internal static class Calls
    {
        /// <summary>
        /// Starts a request that <paramref name="send"/> makes with its
        /// user_data: the task of its one outcome (a refused request faults it
        /// at once).
        /// </summary>
        internal static Task<Message> Request(Func<IntPtr, int> send)
        {
            var completion = new TaskCompletionSource<Message>(TaskCreationOptions.RunContinuationsAsynchronously);
            var userData = Callbacks.Pending(completion);
            var status = send(userData);
            if (status != Native.VELTIX_OK)
            {
                Registration.Drop(userData);
                completion.SetException(VeltixException.FromLastError(status));
            }
            return completion.Task;
        }

        /// <summary>Registers a handler through <paramref name="register"/>, releasing it if refused.</summary>
        internal static void Register(Delegate handler, Sink sink, Func<IntPtr, int> register)
        {
            var userData = Registration.Make(handler, sink);
            var status = register(userData);
            if (status != Native.VELTIX_OK)
            {
                var error = VeltixException.FromLastError(status);
                Registration.Drop(userData);
                throw error;
            }
        }

        /// <summary>What a dispatch call returned: throws its failure, then what a handler threw.</summary>
        internal static int Dispatched(Sink sink, int status, UIntPtr count)
        {
            VeltixException.Check(status);
            sink.ThrowPending();
            return checked((int)count.ToUInt64());
        }
    }
}
