# Writes the seed corpus of each fuzz target into fuzz/corpus (run from fuzz/).
import json, struct, zlib, os
def frame(t, rid, p, crc=None, flags=0):
    return b"VX" + bytes([flags]) + struct.pack(">HII", t, len(p), zlib.crc32(p) if crc is None else crc) + struct.pack(">H", rid) + p
def hs(obj):
    b = json.dumps(obj).encode()
    return struct.pack(">H", len(b)) + b
seeds = {
 "decoder": {
   "vector": b"\x05" + frame(200, 0x1234, b"hello"),
   "three": b"\x10" + frame(200,1,b"one") + frame(201,2,b"") + frame(202,3,b"three"),
   "garbage_then_frame": b"\x03" + b"garbage!" + frame(200, 2, b"good"),
   "bad_crc": b"\x20" + frame(200, 1, b"corrupt", crc=1) + frame(200, 2, b"after"),
   "oversized": b"\x40" + frame(200, 1, b"x" * 5000) + frame(200, 3, b"next"),
   "declared_large": b"\x01" + struct.pack(">2sBHII H".replace(" ",""), b"VX", 0, 200, 10 << 20, 0xdeadbeef, 7) * 8,
   "ping": b"\x07" + frame(0, 9, b"") + frame(1, 9, b""),
 },
 "handshake": {
   "reference_hello": hs({"v": "3.3.0", "pv": "1.0", "meta": {}}),
   "ack": hs({"result": "ok"}),
   "server_full": hs({"error": "server_full"}),
   "frame_inside": hs({"v": "3.3.0", "pv": "1.0", "meta": {}}) + frame(203, 40000, b"early") + hs({"result": "ok"}),
   "bad_pv": hs({"v": "x", "pv": "2.0"}) + hs({"pv": "1"}) + hs([1, 2]),
   "too_long": struct.pack(">H", 40000) + b"{" * 64,
 },
 "server_connection": {
   "echo": b"\x01" + frame(200, 1, b"hello") + frame(200, 2, b"x" * 300),
   "ping_and_unrouted": b"\x03" + frame(0, 5, b"") + frame(230, 6, b"free"),
   "own_hello": b"\x00" + hs({"v": "1", "pv": "1.0", "meta": {}}) + frame(200, 3, b"after my hello"),
   "bad_hello": b"\x00" + hs({"pv": "9.9"}),
   "bad_crc_and_garbage": b"\x09" + b"zzzz" + frame(200, 1, b"bad", crc=5) + frame(200, 2, b"ok"),
   "frame_before_hello": b"\x00" + frame(200, 1, b"too early"),
 },
 "bus_message": {
   "everyone": bytes([1, 1, 0, 3]) + struct.pack(">I", 2) + struct.pack(">QQ", 1, (5 << 37) | 9) + frame(220, 7, b"news"),
   "peer": bytes([1, 2, 0, 1]) + struct.pack(">Q", (2 << 37) | 4) + frame(220, 8, b"to you"),
   "tag_value": bytes([1, 3, 0, 2]) + struct.pack(">H", 4) + b"room" + b"\x01" + struct.pack(">H", 3) + b"red" + frame(221, 9, b""),
   "tag_any": bytes([1, 3, 0, 2]) + struct.pack(">H", 4) + b"room" + b"\x00" + frame(221, 9, b"x" * 100),
   "huge_count": bytes([1, 1, 0, 3]) + struct.pack(">I", 0xFFFFFFFF) + frame(220, 7, b""),
 },
 "proxy_header": {
   "v1_tcp4": b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 8080\r\n" + hs({"pv": "1.0"}),
   "v1_tcp6": b"PROXY TCP6 2001:db8::7 2001:db8::1 51234 8080\r\n",
   "v1_unknown": b"PROXY UNKNOWN\r\n",
   "v2_ipv4": b"\r\n\r\n\0\r\nQUIT\n" + bytes([0x21, 0x11, 0, 12, 192, 0, 2, 7, 10, 0, 0, 1]) + struct.pack(">HH", 51234, 8080),
   "v2_local": b"\r\n\r\n\0\r\nQUIT\n" + bytes([0x20, 0x00, 0, 0]),
   "v2_ipv6_tlv": b"\r\n\r\n\0\r\nQUIT\n" + bytes([0x21, 0x21, 0, 40]) + bytes(range(32)) + struct.pack(">HH", 1, 2) + bytes([1, 0, 1, 5]),
   "handshake": hs({"v": "3.3.0", "pv": "1.0", "meta": {}}),
 },
}
for target, files in seeds.items():
    os.makedirs(f"corpus/{target}", exist_ok=True)
    for name, data in files.items():
        open(f"corpus/{target}/{name}", "wb").write(data)
print("ok")
