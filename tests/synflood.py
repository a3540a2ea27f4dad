#!/usr/bin/env python3
"""A SYN flood from random sources, for tests/pressure.rs and
tests/synproxy.rs.

Sends TCP SYNs (with an MSS option, as flood tools that mimic clients send
them) to DST:DPORT at RATE packets a second for SECONDS seconds, each from a
random address of SRC_NET (default 10.0.0.0/8) and a random port, through a
raw socket (the kernel routes them and fills in the IPv4 checksum and
length; the TCP checksum is computed here). Python's standard library only.

    synflood.py DST DPORT RATE SECONDS [SRC_NET]

Prints "ready" once the socket is open and "sent N" at the end.
"""
import random
import socket
import struct
import sys
import time


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def syn(src: bytes, dst: bytes, sport: int, dport: int, seq: int) -> bytes:
    tcp = struct.pack("!HHIIBBHHHBBH", sport, dport, seq, 0, 6 << 4, 0x02, 64240, 0, 0, 2, 4, 1460)
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45, 0, 20 + len(tcp), random.getrandbits(16), 0, 64, socket.IPPROTO_TCP, 0, src, dst,
    )
    return ip + tcp


def main() -> None:
    dst_s, dport, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    dst = socket.inet_aton(dst_s)
    net, bits = (sys.argv[5] if len(sys.argv) > 5 else "10.0.0.0/8").split("/")
    host_bits = 32 - int(bits)
    base = struct.unpack("!I", socket.inet_aton(net))[0] >> host_bits << host_bits
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    print("ready", flush=True)
    start = time.monotonic()
    sent = ok = 0
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            break
        due = int((now - start) * rate) + 1
        while sent < due:
            src = struct.pack("!I", base | random.getrandbits(host_bits))
            pkt = syn(src, dst, random.randint(1024, 65535), dport, random.getrandbits(32))
            try:
                s.sendto(pkt, (dst_s, 0))
                ok += 1
            except OSError:
                pass
            sent += 1
        time.sleep(0.001)
    print(f"sent {ok}", flush=True)


if __name__ == "__main__":
    main()
