"""Hostile inputs for the console's browser test: the sample capture with flows whose TLS SNI, HTTP
Host and User-Agent carry script payloads appended, and the sample inventory with a device whose MDM
name is one. Written with the standard library only (pcap records, IPv4/TCP with checksums)."""

import json
import struct

SNI_PAYLOAD = "x<img src=x onerror=alert(11)>.evil.example"
HOST_PAYLOAD = "<script>alert(12)</script>.evil.example"
UA_PAYLOAD = "<img src=x onerror=alert(13)>"
NAME_PAYLOAD = "<img src=x onerror=alert(14)><script>alert(15)</script>"
DEVICE_IP = "10.20.1.10"
SERVER_IP = "203.0.113.99"


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def _ip(a: str) -> bytes:
    return bytes(int(x) for x in a.split("."))


def _frame(src, dst, sport, dport, seq, ack, flags, payload=b""):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    pseudo = _ip(src) + _ip(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", _csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, _ip(src), _ip(dst))
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    eth = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
    return eth + ip + tcp


def _client_hello(sni: str) -> bytes:
    name = sni.encode()
    sni_ext = struct.pack("!HBH", len(name) + 3, 0, len(name)) + name
    exts = struct.pack("!HH", 0, len(sni_ext)) + sni_ext
    exts += struct.pack("!HHH", 10, 4, 2) + b"\x00\x1d"  # supported_groups: x25519
    exts += struct.pack("!HHB", 43, 3, 2) + b"\x03\x04"  # supported_versions: TLS 1.3
    body = b"\x03\x03" + bytes(range(32)) + b"\x00" + struct.pack("!H", 4) + b"\x13\x01\x13\x02" + b"\x01\x00"
    body += struct.pack("!H", len(exts)) + exts
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def _session(sport, dport, request, response):
    c, s = DEVICE_IP, SERVER_IP
    out = [
        _frame(c, s, sport, dport, 1000, 0, 0x02),
        _frame(s, c, dport, sport, 5000, 1001, 0x12),
        _frame(c, s, sport, dport, 1001, 5001, 0x10),
        _frame(c, s, sport, dport, 1001, 5001, 0x18, request),
        _frame(s, c, dport, sport, 5001, 1001 + len(request), 0x18, response),
        _frame(c, s, sport, dport, 1001 + len(request), 5001 + len(response), 0x11),
        _frame(s, c, dport, sport, 5001 + len(response), 1002 + len(request), 0x11),
        _frame(c, s, sport, dport, 1002 + len(request), 5002 + len(response), 0x10),
    ]
    return out


def write_capture(sample: str, out: str) -> None:
    """The sample capture followed by hostile TLS and HTTP sessions from a managed device."""
    data = open(sample, "rb").read()
    header, body = data[:24], data[24:]
    last = 0
    off = 0
    while off + 16 <= len(body):
        ts, us, incl, _ = struct.unpack("<IIII", body[off : off + 16])
        last = max(last, ts)
        off += 16 + incl
    http = (
        f"GET /sync HTTP/1.1\r\nHost: {HOST_PAYLOAD}\r\nUser-Agent: {UA_PAYLOAD}\r\nAccept: */*\r\n\r\n"
    ).encode()
    frames = []
    for i in range(3):
        frames += _session(61000 + i, 8088, _client_hello(SNI_PAYLOAD), b"\x15\x03\x03\x00\x02\x02\x28")
        frames += _session(62000 + i, 4444, http, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    with open(out, "wb") as f:
        f.write(header + body)
        for n, fr in enumerate(frames):
            f.write(struct.pack("<IIII", last + 2 + n // 8, (n % 8) * 1000, len(fr), len(fr)) + fr)


def write_inventory(sample: str, out: str) -> str:
    """The sample inventory with one device renamed to a script payload; returns its UDID."""
    inv = json.load(open(sample))
    dev = inv["results"][0]
    dev["general"]["displayName"] = NAME_PAYLOAD
    json.dump(inv, open(out, "w"))
    return dev["general"]["udid"]
