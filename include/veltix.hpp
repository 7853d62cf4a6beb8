/*
 * veltix.hpp: the C++17 API of libveltix, header-only, over the C API of
 * veltix.h (link with libveltix as for C).
 *
 *   veltix::client client(veltix::client_config().server("127.0.0.1", 8080));
 *   client.route(200, [](veltix::client_ref self, veltix::message_view m) {
 *       self.reply(m, 200, m.text());           // any callable, captures too
 *   });
 *   client.connect();
 *   veltix::message answer = client.send_and_wait(200, "hi", std::chrono::seconds(5));
 *
 * Conventions
 * - `client`, `server` and `message` own their C handle: move-only, freed
 *   by the destructor. `client_ref`/`server_ref` (what callbacks receive)
 *   and `message_view` are borrowed, valid for the call they are given to.
 * - Errors: every operation has a throwing form (`veltix::error`, with the
 *   status and the library's detail text) and a `noexcept` form taking a
 *   `std::error_code &` as its last parameter (the detail is then in
 *   `veltix::last_error()`, on the same thread, until the next failure).
 *   Built without exceptions (-fno-exceptions), the throwing forms print
 *   the error and abort: use the `std::error_code` forms.
 * - Callbacks are any callable. Each is stored on the heap and released,
 *   exactly once, when the library can never call it again (replaced,
 *   unrouted, handle freed): its captures live exactly that long. An
 *   exception thrown by a callback is caught in the trampoline and passed
 *   to the handler set with `veltix::set_callback_exception_handler`
 *   (default: a line on stderr); it never crosses into the library.
 * - Threads: callbacks run as the C API says (worker threads, or inside
 *   `dispatch()` when `max_workers` is 0), with no library lock held. Every
 *   call is allowed inside them, destroying the handle included (it then
 *   returns without waiting for the calling thread).
 * - Payloads go in as `veltix::bytes`: text, any contiguous byte container
 *   or a pointer and a length; received payloads come out as
 *   `message_view::text()` (`std::string_view`) and `data()`/`size()`.
 */
#ifndef VELTIX_HPP
#define VELTIX_HPP

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "veltix.h"

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
#define VELTIX_HPP_EXCEPTIONS 1
#else
#define VELTIX_HPP_EXCEPTIONS 0
#endif

namespace veltix {

/** Status codes as a scoped enum; compare a `std::error_code` with them. */
enum class status : std::int32_t {
    ok = VELTIX_OK,
    null_pointer = VELTIX_ERR_NULL_POINTER,
    invalid_argument = VELTIX_ERR_INVALID_ARGUMENT,
    not_connected = VELTIX_ERR_NOT_CONNECTED,
    already_connected = VELTIX_ERR_ALREADY_CONNECTED,
    connect_failed = VELTIX_ERR_CONNECT_FAILED,
    handshake_failed = VELTIX_ERR_HANDSHAKE_FAILED,
    version_mismatch = VELTIX_ERR_VERSION_MISMATCH,
    server_full = VELTIX_ERR_SERVER_FULL,
    timeout = VELTIX_ERR_TIMEOUT,
    message_too_large = VELTIX_ERR_MESSAGE_TOO_LARGE,
    io = VELTIX_ERR_IO,
    closed = VELTIX_ERR_CLOSED,
    ids_exhausted = VELTIX_ERR_IDS_EXHAUSTED,
    already_exists = VELTIX_ERR_ALREADY_EXISTS,
    not_found = VELTIX_ERR_NOT_FOUND,
    panic = VELTIX_ERR_PANIC,
    bind_failed = VELTIX_ERR_BIND_FAILED,
    buffer_too_small = VELTIX_ERR_BUFFER_TOO_SMALL,
    already_running = VELTIX_ERR_ALREADY_RUNNING,
};

/** The error category of libveltix status codes (name "veltix"). */
inline const std::error_category &category() noexcept {
    struct veltix_category final : std::error_category {
        const char *name() const noexcept override { return "veltix"; }
        std::string message(int code) const override { return veltix_status_str(code); }
    };
    static const veltix_category instance;
    return instance;
}

/** A status as a `std::error_code` (empty for `status::ok`). */
inline std::error_code make_error_code(status code) noexcept {
    return {static_cast<int>(code), category()};
}

}  // namespace veltix

namespace std {
template <>
struct is_error_code_enum<veltix::status> : true_type {};
}  // namespace std

namespace veltix {

/**
 * A payload to send, borrowed for the call: text (a string literal,
 * `std::string`, `std::string_view`), or bytes from any contiguous
 * container of 1-byte elements (`std::vector<std::uint8_t>`,
 * `std::array<char, N>`, `std::span<const std::byte>`, ...), or a pointer
 * and a length.
 */
class bytes {
   public:
    /** A NUL-terminated string, without its NUL. */
    bytes(const char *text) noexcept  // NOLINT: implicit by design
        : data_(reinterpret_cast<const std::uint8_t *>(text)),
          size_(text != nullptr ? std::char_traits<char>::length(text) : 0) {}
    /** Any contiguous container of 1-byte elements. */
    template <typename Container,
              typename = std::enable_if_t<sizeof(*std::declval<const Container &>().data()) == 1>,
              typename = decltype(std::declval<const Container &>().size())>
    bytes(const Container &container) noexcept  // NOLINT: implicit by design
        : data_(reinterpret_cast<const std::uint8_t *>(container.data())),
          size_(container.size()) {}
    /** `size` bytes at `data`. */
    bytes(const void *data, std::size_t size) noexcept
        : data_(static_cast<const std::uint8_t *>(data)), size_(size) {}
    /** The first byte. */
    const std::uint8_t *data() const noexcept { return data_; }
    /** The length in bytes. */
    std::size_t size() const noexcept { return size_; }

   private:
    const std::uint8_t *data_;
    std::size_t size_;
};

/** A peer of a server (the C `veltix_peer_id_t`). */
using peer_id = veltix_peer_id_t;
/** Milliseconds, the unit of every timeout. */
using milliseconds = std::chrono::milliseconds;
/** Microseconds, the unit of the reply spin. */
using microseconds = std::chrono::microseconds;

/** The calling thread's detail of its last failure ("" if none). */
inline std::string_view last_error() noexcept { return veltix_last_error(); }

/** The library's version ("MAJOR.MINOR.PATCH"). */
inline std::string_view version() noexcept { return veltix_version(); }

/**
 * What the throwing forms throw: the status (as `code()`, comparable with
 * `veltix::status`) and the detail of `veltix_last_error()` (in `what()`).
 */
class error : public std::system_error {
   public:
    /** An error of `code` (a `veltix::status`) with the library's `detail`. */
    error(std::error_code code, const std::string &detail) : std::system_error(code, detail) {}
    /** The C status value. */
    veltix_status_t status_value() const noexcept { return code().value(); }
};

namespace detail {

inline std::error_code code_of(veltix_status_t result) noexcept {
    return result == VELTIX_OK ? std::error_code() : std::error_code(result, category());
}

/** Throws `ec` with the thread's detail (or aborts, without exceptions). */
inline void throw_if(const std::error_code &ec) {
    if (!ec) {
        return;
    }
#if VELTIX_HPP_EXCEPTIONS
    throw error(ec, std::string(last_error()));
#else
    std::fprintf(stderr, "veltix: %s: %s\n", ec.message().c_str(), veltix_last_error());
    std::abort();
#endif
}

/** A count clamped to 0..UINT32_MAX. */
inline std::uint32_t to_u32(long long count) noexcept {
    return count <= 0 ? 0u
                      : (count >= 0xFFFFFFFFll ? 0xFFFFFFFFu : static_cast<std::uint32_t>(count));
}

inline std::uint32_t to_ms(milliseconds timeout) noexcept { return to_u32(timeout.count()); }

inline std::uint32_t to_us(microseconds spin) noexcept { return to_u32(spin.count()); }

inline std::int32_t to_signed_ms(std::optional<milliseconds> timeout) noexcept {
    if (!timeout) {
        return -1;
    }
    auto count = timeout->count();
    return count <= 0 ? 0 : (count >= 0x7FFFFFFFll ? 0x7FFFFFFF : static_cast<std::int32_t>(count));
}

/** The handler of exceptions escaping callbacks, see
 * `set_callback_exception_handler`. */
inline std::function<void(std::exception_ptr)> &exception_handler() {
    static std::function<void(std::exception_ptr)> handler;
    return handler;
}

inline std::mutex &exception_handler_lock() {
    static std::mutex lock;
    return lock;
}

/** Runs a user callback: an exception stops here and goes to the handler. */
template <typename Body>
void guarded(Body &&body) noexcept {
#if VELTIX_HPP_EXCEPTIONS
    try {
        body();
    } catch (...) {
        std::function<void(std::exception_ptr)> handler;
        {
            std::lock_guard<std::mutex> hold(exception_handler_lock());
            handler = exception_handler();
        }
        try {
            if (handler) {
                handler(std::current_exception());
            } else {
                try {
                    throw;
                } catch (const std::exception &e) {
                    std::fprintf(stderr, "veltix: a callback threw: %s\n", e.what());
                } catch (...) {
                    std::fprintf(stderr, "veltix: a callback threw a non-std exception\n");
                }
            }
        } catch (...) {
            std::fprintf(stderr, "veltix: the callback exception handler threw\n");
        }
    }
#else
    body();
#endif
}

/** A callable on the heap, passed to C as user_data. */
template <typename Signature>
using slot = std::function<Signature>;

template <typename Signature>
void release(void *user_data) {
    delete static_cast<slot<Signature> *>(user_data);
}

template <typename Signature>
slot<Signature> &slot_of(void *user_data) {
    return *static_cast<slot<Signature> *>(user_data);
}

/**
 * Registers `callable` through `register_fn(trampoline, user_data,
 * free_user_data)`; on failure the slot is released here.
 */
template <typename Signature, typename Callable, typename Register>
std::error_code attach(Callable &&callable, Register &&register_fn) noexcept {
    auto *stored = new (std::nothrow) slot<Signature>();
    if (stored == nullptr) {
        return make_error_code(status::invalid_argument);
    }
#if VELTIX_HPP_EXCEPTIONS
    try {
        *stored = std::forward<Callable>(callable);
    } catch (...) {
        delete stored;
        return make_error_code(status::invalid_argument);
    }
#else
    *stored = std::forward<Callable>(callable);
#endif
    veltix_status_t result = register_fn(static_cast<void *>(stored), &release<Signature>);
    if (result != VELTIX_OK) {
        delete stored;  // the library keeps nothing when it refuses
    }
    return code_of(result);
}

/** Tag of the constructor that adopts a C handle. */
struct adopt_t {};

/**
 * The owning side shared by `client` and `server`: creates the handle from
 * a config (`New`), frees it in the destructor (`Free`), moves, never
 * copies. `Ref` holds the handle and the operations.
 */
template <typename Derived, typename Ref, typename Raw, typename Config, auto New, auto Free>
class owner : public Ref {
   public:
    /** Creates the handle; throws `veltix::error` if the config is refused. */
    explicit owner(Config config) : Ref(nullptr) {
        throw_if(code_of(New(config.c_config(), &this->raw_)));
    }
    /** Non-throwing creation: an empty object (`!*this`) on error. */
    static Derived create(Config config, std::error_code &ec) noexcept {
        Raw *raw = nullptr;
        ec = code_of(New(config.c_config(), &raw));
        return Derived(adopt_t{}, raw);
    }
    /** Takes ownership of a C handle (NULL: empty). */
    owner(adopt_t, Raw *raw) noexcept : Ref(raw) {}
    owner(owner &&other) noexcept : Ref(std::exchange(other.raw_, nullptr)) {}
    owner &operator=(owner &&other) noexcept {
        if (this != &other) {
            Free(this->raw_);
            this->raw_ = std::exchange(other.raw_, nullptr);
        }
        return *this;
    }
    owner(const owner &) = delete;
    owner &operator=(const owner &) = delete;
    ~owner() { Free(this->raw_); }

    /** Whether it holds a handle. */
    explicit operator bool() const noexcept { return this->raw_ != nullptr; }
};

}  // namespace detail

/**
 * Sets the handler of exceptions thrown by callbacks (the trampoline
 * catches them; they never reach the library). Called on the thread of the
 * callback that threw. An empty function restores the default: one line on
 * stderr.
 */
inline void set_callback_exception_handler(std::function<void(std::exception_ptr)> handler) {
    std::lock_guard<std::mutex> hold(detail::exception_handler_lock());
    detail::exception_handler() = std::move(handler);
}

/** A received message, borrowed: valid during the callback it is given to.
 * `clone()` keeps it. */
class message_view {
   public:
    /** A view of the C message `raw`, borrowed: valid as long as it is. */
    explicit message_view(const veltix_message_t *raw) noexcept : raw_(raw) {}
    /** The message type code. */
    std::uint16_t type() const noexcept { return veltix_message_type(raw_); }
    /** The request id (replies carry the request's id). */
    std::uint16_t request_id() const noexcept { return veltix_message_request_id(raw_); }
    /** The payload bytes (NUL-terminated one past `size()`). */
    const std::uint8_t *data() const noexcept { return veltix_message_content(raw_, nullptr); }
    /** The payload length in bytes. */
    std::size_t size() const noexcept {
        std::size_t len = 0;
        veltix_message_content(raw_, &len);
        return len;
    }
    /** The payload as text (any bytes; no encoding is checked). */
    std::string_view text() const noexcept {
        std::size_t len = 0;
        const std::uint8_t *data = veltix_message_content(raw_, &len);
        return {reinterpret_cast<const char *>(data), len};
    }
    /** The C message. */
    const veltix_message_t *raw() const noexcept { return raw_; }
    /** An owned copy. */
    class message clone() const;

   private:
    const veltix_message_t *raw_;
};

/** An owned message (from `send_and_wait` or `clone`); move-only. An empty
 * message (after a failed `noexcept` call or a move) has `raw() == nullptr`
 * and reads as type 0 with an empty payload. */
class message {
   public:
    message() noexcept = default;
    /** Takes ownership of a C message. */
    explicit message(veltix_message_t *raw) noexcept : raw_(raw) {}
    /** Takes `other`'s message, leaving it empty. */
    message(message &&other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
    /** Frees this message and takes `other`'s, leaving it empty. */
    message &operator=(message &&other) noexcept {
        if (this != &other) {
            veltix_message_free(raw_);
            raw_ = std::exchange(other.raw_, nullptr);
        }
        return *this;
    }
    message(const message &) = delete;
    message &operator=(const message &) = delete;
    ~message() { veltix_message_free(raw_); }

    /** Whether it holds a message. */
    explicit operator bool() const noexcept { return raw_ != nullptr; }
    /** A borrowed view of it. */
    message_view view() const noexcept { return message_view(raw_); }
    /** See `message_view`. */
    std::uint16_t type() const noexcept { return view().type(); }
    /** See `message_view`. */
    std::uint16_t request_id() const noexcept { return view().request_id(); }
    /** See `message_view`. */
    const std::uint8_t *data() const noexcept { return view().data(); }
    /** See `message_view`. */
    std::size_t size() const noexcept { return view().size(); }
    /** See `message_view`. */
    std::string_view text() const noexcept { return view().text(); }
    /** The C message (still owned by this object). */
    veltix_message_t *raw() const noexcept { return raw_; }
    /** Gives up ownership: the caller frees it with `veltix_message_free`. */
    veltix_message_t *release() noexcept { return std::exchange(raw_, nullptr); }

   private:
    veltix_message_t *raw_ = nullptr;
};

inline message message_view::clone() const { return message(veltix_message_clone(raw_)); }

/**
 * The outcome of a `request`, given once to its callback: the reply, or
 * `status::timeout` / `status::closed` with the detail.
 */
class reply_result {
   public:
    /** The outcome `result` of a request, with its `reply` (NULL unless OK) and `detail`. */
    reply_result(veltix_status_t result, const veltix_message_t *reply, const char *detail) noexcept
        : code_(detail::code_of(result)), reply_(reply), detail_(detail != nullptr ? detail : "") {}
    /** True when the reply arrived. */
    explicit operator bool() const noexcept { return !code_; }
    /** Empty on success, else `status::timeout` or `status::closed`. */
    const std::error_code &code() const noexcept { return code_; }
    /** The reply (borrowed for the callback); only when successful. */
    message_view reply() const noexcept { return message_view(reply_); }
    /** What went wrong ("" on success). */
    std::string_view detail() const noexcept { return detail_; }

   private:
    std::error_code code_;
    const veltix_message_t *reply_;
    std::string_view detail_;
};

/** Why a connection ended (`VELTIX_DISCONNECT_*`). */
enum class disconnect_reason : std::int32_t {
    server_closed = VELTIX_DISCONNECT_SERVER_CLOSED,
    error = VELTIX_DISCONNECT_ERROR,
    manual = VELTIX_DISCONNECT_MANUAL,
    peer_closed = VELTIX_DISCONNECT_PEER_CLOSED,
};

/** What a client's `on_disconnect` receives (see `veltix_disconnect_state_t`). */
struct disconnect_state {
    /** True when no reconnection attempt follows. */
    bool permanent;
    /** 0 for the disconnection itself, else the failed attempt's number. */
    std::uint32_t attempt;
    /** Attempts of the reconnection loop. */
    std::uint32_t retry_max;
    /** Why. */
    disconnect_reason reason;
    /** The wait before the next attempt, when one follows. */
    std::chrono::milliseconds next_delay;
    /** What ended the connection or failed the attempt ("" after
     * `disconnect`); borrowed for the callback. */
    std::string_view cause;
};

/** A connection's statistics since its handshake (see `veltix_stats_t`). */
struct stats {
    /** Bytes received. */
    std::uint64_t bytes_in = 0;
    /** Bytes sent. */
    std::uint64_t bytes_out = 0;
    /** Frames received, PINGs and PONGs included. */
    std::uint64_t frames_in = 0;
    /** Frames sent, PINGs and PONGs included. */
    std::uint64_t frames_out = 0;
    /** The last round trip measured (a heartbeat or a ping), if any. */
    std::optional<std::chrono::microseconds> last_rtt;
    /** Time since the last frame arrived. */
    milliseconds since_last_frame{0};
};

namespace detail {
inline stats to_stats(const veltix_stats_t &raw) {
    stats out;
    out.bytes_in = raw.bytes_in;
    out.bytes_out = raw.bytes_out;
    out.frames_in = raw.frames_in;
    out.frames_out = raw.frames_out;
    if (raw.last_rtt_ms >= 0.0) {
        out.last_rtt = std::chrono::microseconds(static_cast<std::int64_t>(raw.last_rtt_ms * 1000.0));
    }
    out.since_last_frame = milliseconds(static_cast<std::int64_t>(raw.ms_since_last_frame));
    return out;
}

inline veltix_stats_t empty_stats() noexcept {
    veltix_stats_t raw{};
    raw.struct_size = sizeof raw;
    return raw;
}
}  // namespace detail

/** Severity of a log line (`VELTIX_LOG_*`). */
enum class log_level : std::int32_t {
    error = VELTIX_LOG_ERROR,
    warn = VELTIX_LOG_WARN,
    info = VELTIX_LOG_INFO,
    debug = VELTIX_LOG_DEBUG,
};

/**
 * Sends the library's log lines up to `max_level` to `sink` (process-wide;
 * called on whichever thread logs, possibly several at once). An empty
 * function restores the default (silent, or stderr per `VELTIX_LOG`). The
 * previous sink is released once its last running call returns.
 */
inline void set_logger(std::function<void(log_level, std::string_view)> sink,
                       log_level max_level = log_level::info) {
    using signature = void(log_level, std::string_view);
    if (!sink) {
        veltix_set_logger(nullptr, nullptr, static_cast<veltix_log_level_t>(max_level), nullptr);
        return;
    }
    auto *stored = new detail::slot<signature>(std::move(sink));
    veltix_set_logger(
        [](void *user_data, veltix_log_level_t level, const char *text) {
            detail::guarded([&] {
                detail::slot_of<signature>(user_data)(static_cast<log_level>(level), text);
            });
        },
        stored, static_cast<veltix_log_level_t>(max_level), &detail::release<signature>);
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

namespace detail {

/**
 * The settings a client and a server share, for `client_config` and
 * `server_config` (`Derived`, whose `raw()` is the C config struct).
 */
template <typename Derived>
class shared_settings {
   public:
    /** Callback threads (1-256); 0 is dispatch mode (see `dispatch`). */
    Derived &max_workers(std::uint32_t count) noexcept {
        self().raw().max_workers = count;
        return self();
    }
    /** Largest frame (header + payload) sent or accepted. */
    Derived &max_message_size(std::uint32_t bytes) noexcept {
        self().raw().max_message_size = bytes;
        return self();
    }
    /** Bound on the TCP connect (client) and the whole handshake. */
    Derived &handshake_timeout(milliseconds timeout) noexcept {
        self().raw().handshake_timeout_ms = to_ms(timeout);
        return self();
    }
    /** Heartbeats: a PING after `interval` of silence, the connection
     * declared dead after `timeout` of silence (0: that half off; see
     * `veltix_liveness_t`). */
    Derived &heartbeat(milliseconds interval, milliseconds timeout) noexcept {
        self().raw().liveness.heartbeat_interval_ms = to_ms(interval);
        self().raw().liveness.heartbeat_timeout_ms = to_ms(timeout);
        return self();
    }
    /** TCP keepalive: first probe after `idle`, then every `interval`;
     * `count` unanswered probes drop the connection. */
    Derived &keepalive(std::chrono::seconds idle, std::chrono::seconds interval,
                       std::uint32_t count) noexcept {
        self().raw().liveness.keepalive_idle_s = static_cast<std::uint32_t>(idle.count());
        self().raw().liveness.keepalive_interval_s = static_cast<std::uint32_t>(interval.count());
        self().raw().liveness.keepalive_count = count;
        return self();
    }

   private:
    Derived &self() noexcept { return static_cast<Derived &>(*this); }
};

}  // namespace detail

/** How a client connects; starts from the library's defaults
 * (127.0.0.1:8080, 4 workers, no retry, ...). Setters chain. */
class client_config : public detail::shared_settings<client_config> {
   public:
    client_config() noexcept {
        veltix_client_config_init(&raw_, sizeof raw_);
        server_addr_ = "127.0.0.1";
    }
    /** Host name or IP literal, and port. */
    client_config &server(std::string host, std::uint16_t port) {
        server_addr_ = std::move(host);
        raw_.port = port;
        return *this;
    }
    /** Reconnection attempts and the pause between them. */
    client_config &retry(std::uint32_t attempts, milliseconds delay = milliseconds(1000)) noexcept {
        raw_.retry = attempts;
        raw_.retry_delay_ms = detail::to_ms(delay);
        return *this;
    }
    /** Bound on one blocking write to a server that stopped reading. */
    client_config &send_timeout(milliseconds timeout) noexcept {
        raw_.send_timeout_ms = detail::to_ms(timeout);
        return *this;
    }
    /** Back-pressure bounds of the messages waiting for callbacks. */
    client_config &max_queued(std::uint32_t messages, std::uint32_t bytes) noexcept {
        raw_.max_queued_messages = messages;
        raw_.max_queued_bytes = bytes;
        return *this;
    }
    /** Reconnection backoff: the wait doubles from the retry delay up to
     * `max`, drawn at random below it with `jitter`. */
    client_config &backoff(milliseconds max, bool jitter = true) noexcept {
        raw_.retry_delay_max_ms = detail::to_ms(max);
        raw_.retry_jitter = jitter;
        return *this;
    }
    /** How long a blocked `send_and_wait` or `ping` spins for a reply it
     *  cannot read itself before it sleeps (0: never; see
     *  `veltix_client_config_t::reply_spin_us`). */
    client_config &reply_spin(microseconds spin) noexcept {
        raw_.reply_spin_us = detail::to_us(spin);
        return *this;
    }
    /** Every field of the C struct (except `server_addr`: use `server`). */
    veltix_client_config_t &raw() noexcept { return raw_; }
    /** The C struct to pass to `veltix_client_new`; valid while this lives. */
    const veltix_client_config_t *c_config() noexcept {
        raw_.server_addr = server_addr_.c_str();
        return &raw_;
    }

   private:
    veltix_client_config_t raw_{};
    std::string server_addr_;
};

namespace detail {

/**
 * A borrowed C handle and the dispatch-mode calls a client and a server
 * share (`Dispatch`: `veltix_*_dispatch`, `EventFd`: `veltix_*_event_fd`).
 */
template <typename Raw, auto Dispatch, auto EventFd>
class handle {
   public:
    explicit handle(Raw *raw) noexcept : raw_(raw) {}

    /** The C handle. */
    Raw *raw() const noexcept { return raw_; }

    /** Dispatch mode: runs the due callbacks on this thread, waiting up to
     * `timeout` for the first (none: until one is due); how many ran. */
    std::size_t dispatch(std::optional<milliseconds> timeout, std::error_code &ec) noexcept {
        std::size_t count = 0;
        ec = code_of(Dispatch(raw_, to_signed_ms(timeout), &count));
        return count;
    }
    /** Throwing form. */
    std::size_t dispatch(std::optional<milliseconds> timeout = milliseconds(0)) {
        std::error_code ec;
        std::size_t count = dispatch(timeout, ec);
        throw_if(ec);
        return count;
    }

    /** Dispatch mode: a handle readable while callbacks are due (a file
     * descriptor for poll or epoll; a SOCKET for WSAPoll or select on
     * Windows); `status::invalid_argument`, and `VELTIX_INVALID_SOCKET`,
     * in worker mode. */
    veltix_socket_t event_fd(std::error_code &ec) const noexcept {
        veltix_socket_t fd = VELTIX_INVALID_SOCKET;
        ec = code_of(EventFd(raw_, &fd));
        return fd;
    }
    /** Throwing form. */
    veltix_socket_t event_fd() const {
        std::error_code ec;
        veltix_socket_t fd = event_fd(ec);
        throw_if(ec);
        return fd;
    }

   protected:
    Raw *raw_;
};

}  // namespace detail

/**
 * A client's operations on a borrowed handle: what callbacks receive, and
 * the base of `client`. Valid while the client is.
 */
class client_ref
    : public detail::handle<veltix_client_t, veltix_client_dispatch, veltix_client_event_fd> {
   public:
    /** A view of the C client `raw` (not owned; e.g. inside a callback). */
    explicit client_ref(veltix_client_t *raw) noexcept : handle(raw) {}

    /** Connects and waits for the handshake (see `veltix_client_connect`). */
    void connect(std::error_code &ec) noexcept { ec = detail::code_of(veltix_client_connect(raw_)); }
    /** Throwing form. */
    void connect() { throw_on(veltix_client_connect(raw_)); }

    /** Starts connecting and returns at once; the outcome comes as
     * `on_connect` or `on_disconnect`. */
    void connect_async(std::error_code &ec) noexcept {
        ec = detail::code_of(veltix_client_connect_async(raw_));
    }
    /** Throwing form. */
    void connect_async() { throw_on(veltix_client_connect_async(raw_)); }

    /** Closes the connection (or cancels a reconnection); `on_disconnect`
     * with reason manual. */
    void disconnect(std::error_code &ec) noexcept {
        ec = detail::code_of(veltix_client_disconnect(raw_));
    }
    /** Throwing form. */
    void disconnect() { throw_on(veltix_client_disconnect(raw_)); }

    /** Whether connected now. */
    bool is_connected() const noexcept { return veltix_client_is_connected(raw_); }

    /** The current connection's statistics. */
    stats statistics(std::error_code &ec) const noexcept {
        veltix_stats_t raw_stats = detail::empty_stats();
        ec = detail::code_of(veltix_client_stats(raw_, &raw_stats));
        return detail::to_stats(raw_stats);
    }
    /** Throwing form. */
    stats statistics() const {
        std::error_code ec;
        stats out = statistics(ec);
        detail::throw_if(ec);
        return out;
    }

    /** Sends a message. */
    void send(std::uint16_t type, bytes payload, std::error_code &ec) noexcept {
        ec = detail::code_of(
            veltix_client_send(raw_, type, payload.data(), payload.size()));
    }
    /** Throwing form. */
    void send(std::uint16_t type, bytes payload) {
        throw_on(veltix_client_send(raw_, type, payload.data(), payload.size()));
    }

    /** Replies to `to` (a message carrying its request id). */
    void reply(message_view to, std::uint16_t type, bytes payload,
               std::error_code &ec) noexcept {
        ec = detail::code_of(
            veltix_client_reply(raw_, to.raw(), type, payload.data(), payload.size()));
    }
    /** Throwing form. */
    void reply(message_view to, std::uint16_t type, bytes payload) {
        std::error_code ec;
        reply(to, type, payload, ec);
        detail::throw_if(ec);
    }

    /** Sends a request and blocks for its reply (up to `timeout`); an empty
     * message on error. */
    message send_and_wait(std::uint16_t type, bytes payload, milliseconds timeout,
                          std::error_code &ec) noexcept {
        veltix_message_t *response = nullptr;
        ec = detail::code_of(veltix_client_send_and_wait(raw_, type, payload.data(),
                                                         payload.size(), detail::to_ms(timeout),
                                                         &response));
        return message(response);
    }
    /** Throwing form. */
    message send_and_wait(std::uint16_t type, bytes payload, milliseconds timeout) {
        std::error_code ec;
        message reply_message = send_and_wait(type, payload, timeout, ec);
        detail::throw_if(ec);
        return reply_message;
    }

    /**
     * Sends a request without waiting: `on_reply(client_ref, reply_result)`
     * runs exactly once (on a worker, or in `dispatch`) with the reply, a
     * timeout, or `status::closed`. If the call fails, it never runs.
     */
    template <typename OnReply>
    void request(std::uint16_t type, bytes payload, milliseconds timeout,
                 OnReply &&on_reply, std::error_code &ec) noexcept {
        using signature = void(client_ref, const reply_result &);
        auto *stored = new (std::nothrow) detail::slot<signature>(std::forward<OnReply>(on_reply));
        if (stored == nullptr) {
            ec = make_error_code(status::invalid_argument);
            return;
        }
        veltix_status_t result = veltix_client_request(
            raw_, type, payload.data(), payload.size(), detail::to_ms(timeout),
            [](void *user_data, veltix_client_t *client, veltix_status_t outcome,
               const veltix_message_t *reply_message, const char *error_text) {
                std::unique_ptr<detail::slot<signature>> slot(
                    static_cast<detail::slot<signature> *>(user_data));
                detail::guarded([&] {
                    (*slot)(client_ref(client), reply_result(outcome, reply_message, error_text));
                });
            },
            stored);
        if (result != VELTIX_OK) {
            delete stored;
        }
        ec = detail::code_of(result);
    }
    /** Throwing form. */
    template <typename OnReply>
    void request(std::uint16_t type, bytes payload, milliseconds timeout,
                 OnReply &&on_reply) {
        std::error_code ec;
        request(type, payload, timeout, std::forward<OnReply>(on_reply), ec);
        detail::throw_if(ec);
    }

    /** Pings the server; the round trip in milliseconds. */
    double ping(milliseconds timeout, std::error_code &ec) noexcept {
        double rtt = 0.0;
        ec = detail::code_of(veltix_client_ping(raw_, detail::to_ms(timeout), &rtt));
        return rtt;
    }
    /** Throwing form. */
    double ping(milliseconds timeout) {
        std::error_code ec;
        double rtt = ping(timeout, ec);
        detail::throw_if(ec);
        return rtt;
    }

    /** Starts a reconnection loop (`attempts`, or `config.retry` if none). */
    void retry(std::optional<std::int32_t> attempts, std::error_code &ec) noexcept {
        ec = detail::code_of(veltix_client_retry(raw_, attempts.value_or(-1)));
    }
    /** Throwing form. */
    void retry(std::optional<std::int32_t> attempts = std::nullopt) {
        throw_on(veltix_client_retry(raw_, attempts.value_or(-1)));
    }
    /** Cancels a running reconnection loop. */
    void stop_retry() noexcept { veltix_client_stop_retry(raw_); }

    /** Waits until the client is closed and its `on_disconnect` calls ran
     * (up to `timeout`, none: forever). */
    void wait_until_closed(std::optional<milliseconds> timeout, std::error_code &ec) noexcept {
        ec = detail::code_of(veltix_client_wait_until_closed(raw_, detail::to_signed_ms(timeout)));
    }
    /** Throwing form. */
    void wait_until_closed(std::optional<milliseconds> timeout = std::nullopt) {
        throw_on(veltix_client_wait_until_closed(raw_, detail::to_signed_ms(timeout)));
    }

    /** `f(client_ref, message_view)` for every message with no route. */
    template <typename F>
    void on_recv(F &&f, std::error_code &ec) noexcept {
        ec = set_message_callback(std::forward<F>(f), [&](veltix_message_fn fn, void *data,
                                                          veltix_free_fn release) {
            return veltix_client_on_recv(raw_, fn, data, release);
        });
    }
    /** Throwing form. */
    template <typename F>
    void on_recv(F &&f) {
        std::error_code ec;
        on_recv(std::forward<F>(f), ec);
        detail::throw_if(ec);
    }

    /** `f(client_ref, message_view)` for messages of `type`. */
    template <typename F>
    void route(std::uint16_t type, F &&f, std::error_code &ec) noexcept {
        ec = set_message_callback(std::forward<F>(f), [&](veltix_message_fn fn, void *data,
                                                          veltix_free_fn release) {
            return veltix_client_route(raw_, type, fn, data, release);
        });
    }
    /** Throwing form. */
    template <typename F>
    void route(std::uint16_t type, F &&f) {
        std::error_code ec;
        route(type, std::forward<F>(f), ec);
        detail::throw_if(ec);
    }

    /** Removes the route of `type`; outside a callback, returns once the
     * old callback is not running (and has been released). */
    void unroute(std::uint16_t type, std::error_code &ec) noexcept {
        ec = detail::code_of(veltix_client_unroute(raw_, type));
    }
    /** Throwing form. */
    void unroute(std::uint16_t type) { throw_on(veltix_client_unroute(raw_, type)); }

    /** `f(client_ref)` once each connection's handshake is done. */
    template <typename F>
    void on_connect(F &&f, std::error_code &ec) noexcept {
        using signature = void(client_ref);
        ec = detail::attach<signature>(std::forward<F>(f), [&](void *data, veltix_free_fn release) {
            return veltix_client_on_connect(
                raw_,
                [](void *user_data, veltix_client_t *client) {
                    detail::guarded([&] { detail::slot_of<signature>(user_data)(client_ref(client)); });
                },
                data, release);
        });
    }
    /** Throwing form. */
    template <typename F>
    void on_connect(F &&f) {
        std::error_code ec;
        on_connect(std::forward<F>(f), ec);
        detail::throw_if(ec);
    }

    /** `f(client_ref, const disconnect_state &)` at each disconnection step. */
    template <typename F>
    void on_disconnect(F &&f, std::error_code &ec) noexcept {
        using signature = void(client_ref, const disconnect_state &);
        ec = detail::attach<signature>(std::forward<F>(f), [&](void *data, veltix_free_fn release) {
            return veltix_client_on_disconnect(
                raw_,
                [](void *user_data, veltix_client_t *client, const veltix_disconnect_state_t *s) {
                    disconnect_state state{s->permanent, s->attempt, s->retry_max,
                                           static_cast<disconnect_reason>(s->reason),
                                           std::chrono::milliseconds(s->next_delay_ms),
                                           veltix_last_error()};
                    detail::guarded(
                        [&] { detail::slot_of<signature>(user_data)(client_ref(client), state); });
                },
                data, release);
        });
    }
    /** Throwing form. */
    template <typename F>
    void on_disconnect(F &&f) {
        std::error_code ec;
        on_disconnect(std::forward<F>(f), ec);
        detail::throw_if(ec);
    }

   protected:
    /** Throws `veltix::error` (with the detail) unless `result` is `VELTIX_OK`. */
    static void throw_on(veltix_status_t result) { detail::throw_if(detail::code_of(result)); }

    /** Registers `f` as a message callback through `register_fn(fn, user_data, free_user_data)`. */
    template <typename F, typename Register>
    static std::error_code set_message_callback(F &&f, Register &&register_fn) noexcept {
        using signature = void(client_ref, message_view);
        return detail::attach<signature>(
            std::forward<F>(f), [&](void *data, veltix_free_fn release) {
                return register_fn(
                    [](void *user_data, veltix_client_t *client, const veltix_message_t *m) {
                        detail::guarded([&] {
                            detail::slot_of<signature>(user_data)(client_ref(client),
                                                                  message_view(m));
                        });
                    },
                    data, release);
            });
    }
};

/**
 * A client: owns its handle (move-only); the destructor frees it (see
 * `veltix_client_free`, which is safe inside the client's callbacks).
 * `client(config)` creates it (not connected yet) or throws;
 * `client::create(config, ec)` gives an empty client on error.
 */
class client : public detail::owner<client, client_ref, veltix_client_t, client_config,
                                    veltix_client_new, veltix_client_free> {
   public:
    using owner::owner;
};

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

/** How a server listens; starts from the library's defaults ("0.0.0.0",
 * port 8080, 4 workers, no connection limit, ...). Setters chain. */
class server_config : public detail::shared_settings<server_config> {
   public:
    server_config() noexcept {
        veltix_server_config_init(&raw_, sizeof raw_);
        host_ = "0.0.0.0";
    }
    /** Address and port to listen on (port 0: the system picks one, see
     * `server::port`). */
    server_config &listen(std::string host, std::uint16_t port) {
        host_ = std::move(host);
        raw_.port = port;
        return *this;
    }
    /** Connected clients at most (none: unlimited). */
    server_config &max_connection(std::optional<std::uint32_t> count) noexcept {
        raw_.max_connection = count ? static_cast<std::int32_t>(*count) : -1;
        return *this;
    }
    /** The server-wide memory budget. */
    server_config &max_memory_bytes(std::uint64_t bytes) noexcept {
        raw_.max_memory_bytes = bytes;
        return *this;
    }
    /** Close a peer that sent no message for `idle` (0: never). */
    server_config &idle_timeout(milliseconds idle) noexcept {
        raw_.idle_timeout_ms = detail::to_ms(idle);
        return *this;
    }
    /** Run routes, `on_recv`, `on_connect` and `on_disconnect` on the I/O
     *  thread (short, non-blocking callbacks only; see
     *  `veltix_server_config_t::callbacks_on_io_thread`). */
    server_config &callbacks_on_io_thread(bool on = true) noexcept {
        raw_.callbacks_on_io_thread = on;
        return *this;
    }
    /** How long a blocked `send_and_wait` or `ping_client` spins for its
     *  reply before it sleeps (0: never; see
     *  `veltix_server_config_t::reply_spin_us`). */
    server_config &reply_spin(microseconds spin) noexcept {
        raw_.reply_spin_us = detail::to_us(spin);
        return *this;
    }
    /** The PROXY protocol: the load balancers (addresses and networks,
     *  comma-separated, e.g. "10.0.0.5, 192.168.0.0/16") whose connections
     *  start with a PROXY header naming the real client (see
     *  `veltix_server_config_t::proxy_protocol_from`). */
    server_config &proxy_protocol_from(std::string trusted) {
        proxy_protocol_from_ = std::move(trusted);
        return *this;
    }
    /** Cluster mode: the bus (`"redis://host:port"`), the cluster's name
     *  and this node's id (1 to 65,535; 0 draws one). See
     *  `veltix_server_config_t::cluster_bus` and docs/cluster.md. */
    server_config &cluster(std::string bus, std::string name, std::uint16_t node_id) {
        cluster_bus_ = std::move(bus);
        cluster_name_ = std::move(name);
        raw_.cluster_node_id = node_id;
        return *this;
    }
    /** I/O threads: event loops sharing the connections (0: one per
     *  core; see `veltix_server_config_t::io_threads`). */
    server_config &io_threads(std::uint32_t count) noexcept {
        raw_.io_threads = count;
        return *this;
    }
    /** Every field of the C struct (except the strings: use `listen`,
     *  `proxy_protocol_from` and `cluster`). */
    veltix_server_config_t &raw() noexcept { return raw_; }
    /** The C struct to pass to `veltix_server_new`; valid while this lives. */
    const veltix_server_config_t *c_config() noexcept {
        raw_.host = host_.c_str();
        raw_.proxy_protocol_from = proxy_protocol_from_ ? proxy_protocol_from_->c_str() : nullptr;
        raw_.cluster_bus = cluster_bus_ ? cluster_bus_->c_str() : nullptr;
        raw_.cluster_name = cluster_name_ ? cluster_name_->c_str() : nullptr;
        return &raw_;
    }

   private:
    veltix_server_config_t raw_{};
    std::string host_;
    std::optional<std::string> proxy_protocol_from_;
    std::optional<std::string> cluster_bus_;
    std::optional<std::string> cluster_name_;
};

/** A cluster node's bus counters (see `veltix_cluster_stats_t`). */
using cluster_stats = veltix_cluster_stats_t;
/** One node of a cluster and its clients (see `veltix_cluster_node_t`). */
using cluster_node = veltix_cluster_node_t;

/** A peer's address. */
struct endpoint {
    /** The IP address as text. */
    std::string address;
    /** The port. */
    std::uint16_t port;
};

/** A server's operations on a borrowed handle: what callbacks receive, and
 * the base of `server`. Valid while the server is. */
class server_ref
    : public detail::handle<veltix_server_t, veltix_server_dispatch, veltix_server_event_fd> {
   public:
    /** A view of the C server `raw` (not owned; e.g. inside a callback). */
    explicit server_ref(veltix_server_t *raw) noexcept : handle(raw) {}

    /** Starts listening. */
    void start(std::error_code &ec) noexcept { ec = detail::code_of(veltix_server_start(raw_)); }
    /** Throwing form. */
    void start() { throw_on(veltix_server_start(raw_)); }

    /** Stops: closes every connection (`on_disconnect` manual). */
    void close(std::error_code &ec) noexcept { ec = detail::code_of(veltix_server_close(raw_)); }
    /** Drains the server for a rolling deploy: stops listening, then closes
     *  its connections `peers_per_second` at a time (0: all at once); see
     *  `veltix_server_drain`. */
    void drain(std::uint32_t peers_per_second, std::error_code &ec) noexcept {
        ec = detail::code_of(veltix_server_drain(raw_, peers_per_second));
    }
    /** Throwing form. */
    void drain(std::uint32_t peers_per_second) { throw_on(veltix_server_drain(raw_, peers_per_second)); }
    /** Throwing form. */
    void close() { throw_on(veltix_server_close(raw_)); }

    /** The port listened on (0 when not started). */
    std::uint16_t port() const noexcept { return veltix_server_port(raw_); }
    /** Connected clients. */
    std::size_t client_count() const noexcept { return veltix_server_client_count(raw_); }

    /** `peer`'s statistics since its handshake. */
    stats peer_statistics(peer_id peer, std::error_code &ec) const noexcept {
        veltix_stats_t raw_stats = detail::empty_stats();
        ec = detail::code_of(veltix_server_peer_stats(raw_, peer, &raw_stats));
        return detail::to_stats(raw_stats);
    }
    /** Throwing form. */
    stats peer_statistics(peer_id peer) const {
        std::error_code ec;
        stats out = peer_statistics(peer, ec);
        detail::throw_if(ec);
        return out;
    }

    /** Sends a message to `peer`. */
    void send(peer_id peer, std::uint16_t type, bytes payload,
              std::error_code &ec) noexcept {
        ec = detail::code_of(
            veltix_server_send(raw_, peer, type, payload.data(), payload.size()));
    }
    /** Throwing form. */
    void send(peer_id peer, std::uint16_t type, bytes payload) {
        std::error_code ec;
        send(peer, type, payload, ec);
        detail::throw_if(ec);
    }

    /** Replies to `to`, received from `peer`. */
    void reply(peer_id peer, message_view to, std::uint16_t type, bytes payload,
               std::error_code &ec) noexcept {
        ec = detail::code_of(veltix_server_reply(raw_, peer, to.raw(), type,
                                                 payload.data(), payload.size()));
    }
    /** Throwing form. */
    void reply(peer_id peer, message_view to, std::uint16_t type, bytes payload) {
        std::error_code ec;
        reply(peer, to, type, payload, ec);
        detail::throw_if(ec);
    }

    /** Sends to every connected client but those in `except`; how many
     * were sent to. */
    std::size_t broadcast(std::uint16_t type, bytes payload,
                          const std::vector<peer_id> &except, std::error_code &ec) noexcept {
        std::size_t sent = 0;
        ec = detail::code_of(veltix_server_broadcast(raw_, type, payload.data(),
                                                     payload.size(), except.data(),
                                                     except.size(), &sent));
        return sent;
    }
    /** Throwing form. */
    std::size_t broadcast(std::uint16_t type, bytes payload,
                          const std::vector<peer_id> &except = {}) {
        std::error_code ec;
        std::size_t sent = broadcast(type, payload, except, ec);
        detail::throw_if(ec);
        return sent;
    }

    /** Sends to every client with tag `name` (and that `value`, if
     *  given), on every node in cluster mode; how many of this node's
     *  were sent to. */
    std::size_t send_to_tag(const std::string &name, const std::optional<std::string> &value,
                            std::uint16_t type, bytes payload, std::error_code &ec) noexcept {
        std::size_t sent = 0;
        ec = detail::code_of(veltix_server_send_to_tag(raw_, name.c_str(),
                                                       value ? value->c_str() : nullptr, type,
                                                       payload.data(), payload.size(), &sent));
        return sent;
    }
    /** Throwing form. */
    std::size_t send_to_tag(const std::string &name, const std::optional<std::string> &value,
                            std::uint16_t type, bytes payload) {
        std::error_code ec;
        std::size_t sent = send_to_tag(name, value, type, payload, ec);
        detail::throw_if(ec);
        return sent;
    }

    /** Cluster mode: the bus counters (`veltix_server_cluster_stats`). */
    cluster_stats cluster_statistics() const {
        cluster_stats stats{};
        stats.struct_size = sizeof stats;
        throw_on(veltix_server_cluster_stats(raw_, &stats));
        return stats;
    }
    /** Cluster mode: every live node and its clients, in node order
     *  (`veltix_server_cluster_nodes`). */
    std::vector<cluster_node> cluster_nodes() const {
        std::vector<cluster_node> nodes;
        for (;;) {
            std::size_t count = 0;
            throw_on(veltix_server_cluster_nodes(raw_, nodes.empty() ? nullptr : nodes.data(),
                                                 nodes.size(), &count, nullptr));
            if (count <= nodes.size()) {
                nodes.resize(count);
                return nodes;
            }
            nodes.resize(count + 4);
        }
    }

    /** Sends a request to `peer` and blocks for its reply. */
    message send_and_wait(peer_id peer, std::uint16_t type, bytes payload,
                          milliseconds timeout, std::error_code &ec) noexcept {
        veltix_message_t *response = nullptr;
        ec = detail::code_of(veltix_server_send_and_wait(raw_, peer, type, payload.data(),
                                                         payload.size(), detail::to_ms(timeout),
                                                         &response));
        return message(response);
    }
    /** Throwing form. */
    message send_and_wait(peer_id peer, std::uint16_t type, bytes payload,
                          milliseconds timeout) {
        std::error_code ec;
        message reply_message = send_and_wait(peer, type, payload, timeout, ec);
        detail::throw_if(ec);
        return reply_message;
    }

    /** Sends a request to `peer` without waiting: `on_reply(server_ref,
     * peer_id, reply_result)` runs exactly once. */
    template <typename OnReply>
    void request(peer_id peer, std::uint16_t type, bytes payload,
                 milliseconds timeout, OnReply &&on_reply, std::error_code &ec) noexcept {
        using signature = void(server_ref, peer_id, const reply_result &);
        auto *stored = new (std::nothrow) detail::slot<signature>(std::forward<OnReply>(on_reply));
        if (stored == nullptr) {
            ec = make_error_code(status::invalid_argument);
            return;
        }
        veltix_status_t result = veltix_server_request(
            raw_, peer, type, payload.data(), payload.size(), detail::to_ms(timeout),
            [](void *user_data, veltix_server_t *server, veltix_peer_id_t from,
               veltix_status_t outcome, const veltix_message_t *reply_message,
               const char *error_text) {
                std::unique_ptr<detail::slot<signature>> slot(
                    static_cast<detail::slot<signature> *>(user_data));
                detail::guarded([&] {
                    (*slot)(server_ref(server), from,
                            reply_result(outcome, reply_message, error_text));
                });
            },
            stored);
        if (result != VELTIX_OK) {
            delete stored;
        }
        ec = detail::code_of(result);
    }
    /** Throwing form. */
    template <typename OnReply>
    void request(peer_id peer, std::uint16_t type, bytes payload,
                 milliseconds timeout, OnReply &&on_reply) {
        std::error_code ec;
        request(peer, type, payload, timeout, std::forward<OnReply>(on_reply), ec);
        detail::throw_if(ec);
    }

    /** Pings `peer`; the round trip in milliseconds. */
    double ping(peer_id peer, milliseconds timeout, std::error_code &ec) noexcept {
        double rtt = 0.0;
        ec = detail::code_of(veltix_server_ping_client(raw_, peer, detail::to_ms(timeout), &rtt));
        return rtt;
    }
    /** Throwing form. */
    double ping(peer_id peer, milliseconds timeout) {
        std::error_code ec;
        double rtt = ping(peer, timeout, ec);
        detail::throw_if(ec);
        return rtt;
    }

    /** Closes `peer`'s connection. */
    void close_client(peer_id peer, std::error_code &ec) noexcept {
        ec = detail::code_of(veltix_server_close_client(raw_, peer));
    }
    /** Throwing form. */
    void close_client(peer_id peer) { throw_on(veltix_server_close_client(raw_, peer)); }

    /** Sets tag `name` of `peer` unless it has it (the reference's add_tag). */
    void add_tag(peer_id peer, const std::string &name, const std::string &value,
                 std::error_code &ec) noexcept {
        ec = detail::code_of(veltix_server_add_tag(raw_, peer, name.c_str(), value.c_str()));
    }
    /** Throwing form. */
    void add_tag(peer_id peer, const std::string &name, const std::string &value) {
        throw_on(veltix_server_add_tag(raw_, peer, name.c_str(), value.c_str()));
    }
    /** Sets tag `name` of `peer`, replacing its value. */
    void set_tag(peer_id peer, const std::string &name, const std::string &value,
                 std::error_code &ec) noexcept {
        ec = detail::code_of(veltix_server_set_tag(raw_, peer, name.c_str(), value.c_str()));
    }
    /** Throwing form. */
    void set_tag(peer_id peer, const std::string &name, const std::string &value) {
        throw_on(veltix_server_set_tag(raw_, peer, name.c_str(), value.c_str()));
    }
    /** Removes tag `name` of `peer`. */
    void remove_tag(peer_id peer, const std::string &name, std::error_code &ec) noexcept {
        ec = detail::code_of(veltix_server_remove_tag(raw_, peer, name.c_str()));
    }
    /** Throwing form. */
    void remove_tag(peer_id peer, const std::string &name) {
        throw_on(veltix_server_remove_tag(raw_, peer, name.c_str()));
    }

    /** Tag `name` of `peer`, or nothing if it is not set. */
    std::optional<std::string> get_tag(peer_id peer, const std::string &name,
                                       std::error_code &ec) const {
        std::string value;
        for (;;) {
            std::size_t len = 0;
            veltix_status_t result = veltix_server_get_tag(
                raw_, peer, name.c_str(), value.empty() ? nullptr : &value[0], value.size(), &len);
            if (result == VELTIX_ERR_NOT_FOUND) {
                ec.clear();
                return std::nullopt;
            }
            if (result == VELTIX_OK && !value.empty()) {
                value.resize(len);
                ec.clear();
                return value;
            }
            if (result != VELTIX_OK && result != VELTIX_ERR_BUFFER_TOO_SMALL) {
                ec = detail::code_of(result);
                return std::nullopt;
            }
            value.assign(len + 1, '\0');  // sized (or grown meanwhile): again
        }
    }
    /** Throwing form. */
    std::optional<std::string> get_tag(peer_id peer, const std::string &name) const {
        std::error_code ec;
        auto value = get_tag(peer, name, ec);
        detail::throw_if(ec);
        return value;
    }

    /** The connected clients, in increasing order. */
    std::vector<peer_id> peers() const {
        return collect([&](peer_id *out, std::size_t capacity, std::size_t *count) {
            return veltix_server_peers(raw_, out, capacity, count);
        });
    }
    /** The clients with tag `name` (and that `value`, if given). */
    std::vector<peer_id> peers_with_tag(const std::string &name,
                                        const std::optional<std::string> &value = {}) const {
        return collect([&](peer_id *out, std::size_t capacity, std::size_t *count) {
            return veltix_server_peers_with_tag(raw_, name.c_str(),
                                                value ? value->c_str() : nullptr, out, capacity,
                                                count);
        });
    }

    /** `peer`'s address and port. */
    endpoint peer_address(peer_id peer, std::error_code &ec) const {
        char text[64] = {0};
        std::uint16_t peer_port = 0;
        ec = detail::code_of(veltix_server_peer_address(raw_, peer, text, sizeof text, &peer_port));
        return ec ? endpoint{std::string(), 0} : endpoint{std::string(text), peer_port};
    }
    /** Throwing form. */
    endpoint peer_address(peer_id peer) const {
        std::error_code ec;
        endpoint address = peer_address(peer, ec);
        detail::throw_if(ec);
        return address;
    }

    /** `f(server_ref, peer_id, message_view)` for messages with no route. */
    template <typename F>
    void on_recv(F &&f, std::error_code &ec) noexcept {
        ec = set_message_callback(std::forward<F>(f), [&](veltix_server_message_fn fn, void *data,
                                                          veltix_free_fn release) {
            return veltix_server_on_recv(raw_, fn, data, release);
        });
    }
    /** Throwing form. */
    template <typename F>
    void on_recv(F &&f) {
        std::error_code ec;
        on_recv(std::forward<F>(f), ec);
        detail::throw_if(ec);
    }
    /** `f(server_ref, peer_id, message_view)` for messages of `type`. */
    template <typename F>
    void route(std::uint16_t type, F &&f, std::error_code &ec) noexcept {
        ec = set_message_callback(std::forward<F>(f), [&](veltix_server_message_fn fn, void *data,
                                                          veltix_free_fn release) {
            return veltix_server_route(raw_, type, fn, data, release);
        });
    }
    /** Throwing form. */
    template <typename F>
    void route(std::uint16_t type, F &&f) {
        std::error_code ec;
        route(type, std::forward<F>(f), ec);
        detail::throw_if(ec);
    }
    /** Removes the route of `type` (waits as the client's `unroute`). */
    void unroute(std::uint16_t type, std::error_code &ec) noexcept {
        ec = detail::code_of(veltix_server_unroute(raw_, type));
    }
    /** Throwing form. */
    void unroute(std::uint16_t type) { throw_on(veltix_server_unroute(raw_, type)); }

    /** `f(server_ref, peer_id)` once a client's handshake is done. */
    template <typename F>
    void on_connect(F &&f, std::error_code &ec) noexcept {
        using signature = void(server_ref, peer_id);
        ec = detail::attach<signature>(
            std::forward<F>(f), [&](void *data, veltix_free_fn release) {
                return veltix_server_on_connect(
                    raw_,
                    [](void *user_data, veltix_server_t *server, veltix_peer_id_t peer) {
                        detail::guarded(
                            [&] { detail::slot_of<signature>(user_data)(server_ref(server), peer); });
                    },
                    data, release);
            });
    }
    /** Throwing form. */
    template <typename F>
    void on_connect(F &&f) {
        std::error_code ec;
        on_connect(std::forward<F>(f), ec);
        detail::throw_if(ec);
    }
    /** `f(server_ref, peer_id, disconnect_reason)` once a client's
     * connection ends. */
    template <typename F>
    void on_disconnect(F &&f, std::error_code &ec) noexcept {
        using signature = void(server_ref, peer_id, disconnect_reason);
        ec = detail::attach<signature>(
            std::forward<F>(f), [&](void *data, veltix_free_fn release) {
                return veltix_server_on_disconnect(
                    raw_,
                    [](void *user_data, veltix_server_t *server, veltix_peer_id_t peer,
                       veltix_disconnect_reason_t reason) {
                        detail::guarded([&] {
                            detail::slot_of<signature>(user_data)(
                                server_ref(server), peer, static_cast<disconnect_reason>(reason));
                        });
                    },
                    data, release);
            });
    }
    /** Throwing form. */
    template <typename F>
    void on_disconnect(F &&f) {
        std::error_code ec;
        on_disconnect(std::forward<F>(f), ec);
        detail::throw_if(ec);
    }

    /** `f(server_ref, bool connected)` when the cluster's bus is reached
     *  or lost (see `veltix_cluster_state_fn`). */
    template <typename F>
    void on_cluster_state(F &&f, std::error_code &ec) noexcept {
        using signature = void(server_ref, bool);
        ec = detail::attach<signature>(
            std::forward<F>(f), [&](void *data, veltix_free_fn release) {
                return veltix_server_on_cluster_state(
                    raw_,
                    [](void *user_data, veltix_server_t *server, bool connected) {
                        detail::guarded([&] {
                            detail::slot_of<signature>(user_data)(server_ref(server), connected);
                        });
                    },
                    data, release);
            });
    }
    /** Throwing form. */
    template <typename F>
    void on_cluster_state(F &&f) {
        std::error_code ec;
        on_cluster_state(std::forward<F>(f), ec);
        detail::throw_if(ec);
    }

   protected:
    /** Throws `veltix::error` (with the detail) unless `result` is `VELTIX_OK`. */
    static void throw_on(veltix_status_t result) { detail::throw_if(detail::code_of(result)); }

    /** Registers `f` as a message callback through `register_fn(fn, user_data, free_user_data)`. */
    template <typename F, typename Register>
    static std::error_code set_message_callback(F &&f, Register &&register_fn) noexcept {
        using signature = void(server_ref, peer_id, message_view);
        return detail::attach<signature>(
            std::forward<F>(f), [&](void *data, veltix_free_fn release) {
                return register_fn(
                    [](void *user_data, veltix_server_t *server, veltix_peer_id_t peer,
                       const veltix_message_t *m) {
                        detail::guarded([&] {
                            detail::slot_of<signature>(user_data)(server_ref(server), peer,
                                                                  message_view(m));
                        });
                    },
                    data, release);
            });
    }

    /** The two-call sizing of the C peer lists, in a loop (the list may
     * grow between the calls). */
    template <typename Fill>
    static std::vector<peer_id> collect(Fill &&fill) {
        std::vector<peer_id> ids;
        for (;;) {
            std::size_t count = 0;
            throw_on(fill(ids.empty() ? nullptr : ids.data(), ids.size(), &count));
            if (count <= ids.size()) {
                ids.resize(count);
                return ids;
            }
            ids.resize(count + 8);
        }
    }
};

/**
 * A server: owns its handle (move-only); the destructor frees it (see
 * `veltix_server_free`). `server(config)` creates it (not listening yet:
 * `start()`) or throws; `server::create(config, ec)` gives an empty server
 * on error.
 */
class server : public detail::owner<server, server_ref, veltix_server_t, server_config,
                                    veltix_server_new, veltix_server_free> {
   public:
    using owner::owner;
};

}  // namespace veltix

#endif /* VELTIX_HPP */
