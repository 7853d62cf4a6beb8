using System;
using Veltix.Interop;

namespace Veltix
{
    /// <summary>
    /// A failed call: <see cref="Status"/> says what kind of failure, and the
    /// message carries the library's detail (what failed and how to fix it).
    /// </summary>
    public class VeltixException : Exception
    {
        /// <summary>An exception of <paramref name="status"/> with the library's <paramref name="detail"/>.</summary>
        public VeltixException(Status status, string detail)
            : base(Describe(status, detail))
        {
            Status = status;
            Detail = detail ?? "";
        }

        /// <summary>The status the library returned.</summary>
        public Status Status { get; private set; }

        /// <summary>The library's detail (<c>veltix_last_error</c>), maybe "".</summary>
        public string Detail { get; private set; }

        private static string Describe(Status status, string detail)
        {
            var name = Utf8.Decode(Native.veltix_status_str((int)status));
            return string.IsNullOrEmpty(detail) ? name : name + ": " + detail;
        }

        /// <summary>Throws the exception of <paramref name="status"/> unless it is OK.</summary>
        internal static void Check(int status)
        {
            if (status != Native.VELTIX_OK)
            {
                throw FromLastError(status);
            }
        }

        /// <summary>The exception of a failed call on this thread, with its detail.</summary>
        internal static VeltixException FromLastError(int status)
        {
            return new VeltixException((Status)status, Utf8.Decode(Native.veltix_last_error()));
        }
    }
}
