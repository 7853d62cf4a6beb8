using System;
using System.Runtime.InteropServices;

namespace Veltix.Interop
{
    /// <summary>A pointer the library gave this program, released once by <see cref="SafeHandle.ReleaseHandle"/>.</summary>
    internal abstract class NativeHandle : SafeHandle
    {
        protected NativeHandle() : base(IntPtr.Zero, true) { }

        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
    }

    /// <summary>A <c>veltix_client_t *</c>, freed by <c>veltix_client_free</c>.</summary>
    internal sealed class ClientHandle : NativeHandle
    {
        protected override bool ReleaseHandle()
        {
            Native.veltix_client_free(handle);
            return true;
        }
    }

    /// <summary>A <c>veltix_server_t *</c>, freed by <c>veltix_server_free</c>.</summary>
    internal sealed class ServerHandle : NativeHandle
    {
        protected override bool ReleaseHandle()
        {
            Native.veltix_server_free(handle);
            return true;
        }
    }

    /// <summary>A <c>veltix_message_t *</c> this program owns, freed by <c>veltix_message_free</c>.</summary>
    internal sealed class MessageHandle : NativeHandle
    {
        protected override bool ReleaseHandle()
        {
            Native.veltix_message_free(handle);
            return true;
        }
    }

    /// <summary>NUL-terminated UTF-8, both ways, on every runtime.</summary>
    internal static class Utf8
    {
        private static readonly System.Text.UTF8Encoding Strict = new System.Text.UTF8Encoding(false, false);

        /// <summary><paramref name="text"/> as NUL-terminated UTF-8; null stays null.</summary>
        internal static byte[] Encode(string text)
        {
            if (text == null)
            {
                return null;
            }
            var bytes = new byte[Strict.GetByteCount(text) + 1];
            Strict.GetBytes(text, 0, text.Length, bytes, 0);
            return bytes;
        }

        /// <summary>The NUL-terminated UTF-8 string at <paramref name="text"/>; "" for NULL.</summary>
        internal static string Decode(IntPtr text)
        {
            if (text == IntPtr.Zero)
            {
                return "";
            }
            var length = 0;
            while (Marshal.ReadByte(text, length) != 0)
            {
                length++;
            }
            var bytes = new byte[length];
            Marshal.Copy(text, bytes, 0, length);
            return Strict.GetString(bytes);
        }

        /// <summary>The first <paramref name="length"/> bytes of <paramref name="buffer"/> as text.</summary>
        internal static string Decode(byte[] buffer, int length)
        {
            return Strict.GetString(buffer, 0, length);
        }

        /// <summary>UTF-8 without a terminator, for payloads.</summary>
        internal static byte[] Payload(string text)
        {
            return Strict.GetBytes(text ?? "");
        }

        internal static string Text(byte[] payload)
        {
            return Strict.GetString(payload);
        }
    }
}
