using System;
using System.Runtime.InteropServices;
using Veltix.Interop;

namespace Veltix
{
    /// <summary>
    /// A received message: its type code, request id and payload (a copy,
    /// yours to keep).
    /// <para>
    /// A message passed to a handler can be answered with <c>Reply</c> while
    /// the handler runs. To answer later (from a <c>Task</c>, another thread),
    /// keep <see cref="Clone"/>'s copy, which owns a native message until it
    /// is disposed.
    /// </para>
    /// </summary>
    public sealed class Message : IDisposable
    {
        private IntPtr borrowed;
        private readonly MessageHandle owned;

        private Message(IntPtr message, MessageHandle owned)
        {
            Type = Native.veltix_message_type(message);
            RequestId = Native.veltix_message_request_id(message);
            UIntPtr length;
            var content = Native.veltix_message_content(message, out length);
            Payload = new byte[checked((int)length.ToUInt64())];
            if (Payload.Length > 0)
            {
                Marshal.Copy(content, Payload, 0, Payload.Length);
            }
            this.owned = owned;
        }

        /// <summary>The message's type code.</summary>
        public ushort Type { get; private set; }

        /// <summary>The request id it carries: non-zero for a request or its reply.</summary>
        public ushort RequestId { get; private set; }

        /// <summary>The payload's bytes.</summary>
        public byte[] Payload { get; private set; }

        /// <summary>The payload as UTF-8 text.</summary>
        public string Text { get { return Utf8.Text(Payload); } }

        /// <summary>
        /// A copy that can be answered at any time: it holds a native message
        /// until disposed (or collected). Only inside the handler that received
        /// this message, or on a copy.
        /// </summary>
        public Message Clone()
        {
            var native = Pointer;
            return new Message(native, Native.veltix_message_clone(native));
        }

        /// <summary>Frees the native message of a <see cref="Clone"/>; nothing for others.</summary>
        public void Dispose()
        {
            if (owned != null)
            {
                owned.Dispose();
            }
        }

        /// <summary>A copy of the message at <paramref name="message"/>, which stays the library's.</summary>
        internal static Message Copy(IntPtr message)
        {
            return new Message(message, null);
        }

        /// <summary>A copy of the owned <paramref name="message"/>, which it frees.</summary>
        internal static Message Take(MessageHandle message)
        {
            using (message)
            {
                return new Message(message.DangerousGetHandle(), null);
            }
        }

        /// <summary>
        /// Runs <paramref name="handle"/> with a message that borrows the
        /// library's <paramref name="message"/> for the call: <c>Reply</c>
        /// works during it, not after.
        /// </summary>
        internal static void Lend(IntPtr message, Action<Message> handle)
        {
            var lent = new Message(message, null) { borrowed = message };
            try
            {
                handle(lent);
            }
            finally
            {
                lent.borrowed = IntPtr.Zero;
            }
        }

        /// <summary>The native message a reply answers; throws once it is no longer valid.</summary>
        internal IntPtr Pointer
        {
            get
            {
                if (owned != null)
                {
                    if (owned.IsClosed)
                    {
                        throw new ObjectDisposedException("Message", "this copy was disposed");
                    }
                    return owned.DangerousGetHandle();
                }
                if (borrowed == IntPtr.Zero)
                {
                    throw new InvalidOperationException(
                        "the message belongs to the library only while its handler runs: "
                        + "reply inside the handler, or keep message.Clone() to reply later");
                }
                return borrowed;
            }
        }

        /// <summary>Its type, request id and size.</summary>
        public override string ToString()
        {
            return string.Format("Message(type {0}, request {1}, {2} bytes)", Type, RequestId, Payload.Length);
        }
    }
}
