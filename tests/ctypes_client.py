"""libveltix from Python through ctypes: connect, send_and_wait and ping
against the reference server, to show the library serves any language with
an FFI.

Its ClientConfig deliberately stops at retry_delay_ms, as a program built
against an older header would: the library must fill and read only the
fields within struct_size, and take the defaults for the rest.

Usage: python tests/ctypes_client.py path/to/libveltix.so PORT
"""

import ctypes
import sys

VELTIX_OK = 0


class ClientConfig(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("server_addr", ctypes.c_char_p),
        ("port", ctypes.c_uint16),
        ("buffer_size", ctypes.c_uint32),
        ("max_message_size", ctypes.c_uint32),
        ("handshake_timeout_ms", ctypes.c_uint32),
        ("max_workers", ctypes.c_uint32),
        ("retry", ctypes.c_uint32),
        ("retry_delay_ms", ctypes.c_uint32),
    ]


def load(path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(path)
    lib.veltix_version.restype = ctypes.c_char_p
    lib.veltix_status_str.restype = ctypes.c_char_p
    lib.veltix_last_error.restype = ctypes.c_char_p
    lib.veltix_client_config_init.argtypes = [ctypes.POINTER(ClientConfig), ctypes.c_size_t]
    lib.veltix_client_new.argtypes = [ctypes.POINTER(ClientConfig), ctypes.POINTER(ctypes.c_void_p)]
    lib.veltix_client_connect.argtypes = [ctypes.c_void_p]
    lib.veltix_client_free.argtypes = [ctypes.c_void_p]
    lib.veltix_client_send_and_wait.argtypes = [
        ctypes.c_void_p, ctypes.c_uint16, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint32,
        ctypes.POINTER(ctypes.c_void_p)]
    lib.veltix_client_ping.argtypes = [ctypes.c_void_p, ctypes.c_uint32,
                                       ctypes.POINTER(ctypes.c_double)]
    lib.veltix_message_content.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]
    lib.veltix_message_content.restype = ctypes.POINTER(ctypes.c_uint8)
    lib.veltix_message_request_id.argtypes = [ctypes.c_void_p]
    lib.veltix_message_request_id.restype = ctypes.c_uint16
    lib.veltix_message_free.argtypes = [ctypes.c_void_p]
    return lib


def check(lib: ctypes.CDLL, status: int, what: str) -> None:
    if status != VELTIX_OK:
        raise SystemExit(f"{what}: {lib.veltix_status_str(status).decode()} "
                         f"({lib.veltix_last_error().decode()})")


def main() -> None:
    lib = load(sys.argv[1])
    config = ClientConfig()
    check(lib, lib.veltix_client_config_init(ctypes.byref(config), ctypes.sizeof(config)), "config_init")
    assert config.struct_size == ctypes.sizeof(config) and config.retry_delay_ms == 1000
    config.port = int(sys.argv[2])
    client = ctypes.c_void_p()
    check(lib, lib.veltix_client_new(ctypes.byref(config), ctypes.byref(client)), "new")
    try:
        check(lib, lib.veltix_client_connect(client), "connect")
        payload = b"hello from ctypes"
        response = ctypes.c_void_p()
        check(lib, lib.veltix_client_send_and_wait(client, 200, payload, len(payload), 5000,
                                                   ctypes.byref(response)), "send_and_wait")
        length = ctypes.c_size_t()
        data = lib.veltix_message_content(response, ctypes.byref(length))
        echoed = ctypes.string_at(data, length.value)
        lib.veltix_message_free(response)
        assert echoed == payload, echoed
        rtt = ctypes.c_double()
        check(lib, lib.veltix_client_ping(client, 5000, ctypes.byref(rtt)), "ping")
        assert rtt.value > 0, rtt.value
        print(f"ctypes: libveltix {lib.veltix_version().decode()} echoed {echoed!r}, "
              f"ping {rtt.value:.3f} ms")
    finally:
        lib.veltix_client_free(client)


if __name__ == "__main__":
    main()
