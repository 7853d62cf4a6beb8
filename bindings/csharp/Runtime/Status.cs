using Veltix.Interop;

namespace Veltix
{
    /// <summary>What a call of the library returned (<c>veltix_status_t</c>); values are stable.</summary>
    public enum Status
    {
        /// <summary>The call succeeded.</summary>
        Ok = Native.VELTIX_OK,
        /// <summary>A required argument was missing.</summary>
        NullPointer = Native.VELTIX_ERR_NULL_POINTER,
        /// <summary>An argument or option is out of range; the detail names it and the fix.</summary>
        InvalidArgument = Native.VELTIX_ERR_INVALID_ARGUMENT,
        /// <summary>The call needs a connection and there is none, or no connected peer has that id.</summary>
        NotConnected = Native.VELTIX_ERR_NOT_CONNECTED,
        /// <summary>Connect (or Retry) while connected, connecting or reconnecting.</summary>
        AlreadyConnected = Native.VELTIX_ERR_ALREADY_CONNECTED,
        /// <summary>The TCP connection could not be made (refused, unreachable, unresolved).</summary>
        ConnectFailed = Native.VELTIX_ERR_CONNECT_FAILED,
        /// <summary>The handshake failed: the server closed, or sent something unexpected.</summary>
        HandshakeFailed = Native.VELTIX_ERR_HANDSHAKE_FAILED,
        /// <summary>The server speaks an incompatible protocol version.</summary>
        VersionMismatch = Native.VELTIX_ERR_VERSION_MISMATCH,
        /// <summary>The server refused the connection because it is full.</summary>
        ServerFull = Native.VELTIX_ERR_SERVER_FULL,
        /// <summary>A wait ran out of time (reply, ping, handshake, WaitUntilClosed).</summary>
        Timeout = Native.VELTIX_ERR_TIMEOUT,
        /// <summary>The message exceeds the maximum message size; nothing was sent.</summary>
        MessageTooLarge = Native.VELTIX_ERR_MESSAGE_TOO_LARGE,
        /// <summary>A socket error on an established connection; the connection is closed.</summary>
        Io = Native.VELTIX_ERR_IO,
        /// <summary>The connection closed, or the client was disconnected or disposed, during the call.</summary>
        Closed = Native.VELTIX_ERR_CLOSED,
        /// <summary>All request ids are waiting for replies.</summary>
        IdsExhausted = Native.VELTIX_ERR_IDS_EXHAUSTED,
        /// <summary>Already registered, or already set.</summary>
        AlreadyExists = Native.VELTIX_ERR_ALREADY_EXISTS,
        /// <summary>Not registered, or not set.</summary>
        NotFound = Native.VELTIX_ERR_NOT_FOUND,
        /// <summary>An internal error of the library. Please report it.</summary>
        Panic = Native.VELTIX_ERR_PANIC,
        /// <summary>The server could not listen: address in use, not permitted, or not local.</summary>
        BindFailed = Native.VELTIX_ERR_BIND_FAILED,
        /// <summary>An output buffer was too small.</summary>
        BufferTooSmall = Native.VELTIX_ERR_BUFFER_TOO_SMALL,
        /// <summary>Start on a server that is already running.</summary>
        AlreadyRunning = Native.VELTIX_ERR_ALREADY_RUNNING,
    }

    /// <summary>Why a connection ended (<c>VELTIX_DISCONNECT_*</c>).</summary>
    public enum DisconnectReason
    {
        /// <summary>The server closed the connection (or shut down).</summary>
        ServerClosed = Native.VELTIX_DISCONNECT_SERVER_CLOSED,
        /// <summary>An error: a failed read or write, a dead heartbeat, a refused connection.</summary>
        Error = Native.VELTIX_DISCONNECT_ERROR,
        /// <summary>This side disconnected.</summary>
        Manual = Native.VELTIX_DISCONNECT_MANUAL,
        /// <summary>The client closed its connection to a server.</summary>
        PeerClosed = Native.VELTIX_DISCONNECT_PEER_CLOSED,
    }

    /// <summary>How much the library logs (<c>VELTIX_LOG_*</c>).</summary>
    public enum LogLevel
    {
        /// <summary>Errors only.</summary>
        Error = Native.VELTIX_LOG_ERROR,
        /// <summary>Errors and warnings (the default).</summary>
        Warn = Native.VELTIX_LOG_WARN,
        /// <summary>Connections, disconnections and other events too.</summary>
        Info = Native.VELTIX_LOG_INFO,
        /// <summary>Everything, frames included.</summary>
        Debug = Native.VELTIX_LOG_DEBUG,
    }
}
