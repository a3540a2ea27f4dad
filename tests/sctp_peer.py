#!/usr/bin/env python3
"""An SCTP peer on raw IP sockets (protocol 132), for tests on kernels
without the sctp module: it builds and checks every packet itself,
CRC32c included, independently of rvs.

    sctp_peer.py server PORT[,PORT...]
        Answers INIT with INIT ACK, COOKIE ECHO with COOKIE ACK, DATA with
        SACK, SHUTDOWN with SHUTDOWN ACK, on the given ports, IPv4 and IPv6.
        Answers from the address a packet came to (a DR real server holds
        the VIP). Prints "ready", then one JSON line per packet received:
        {"src", "dst", "sport", "dport", "chunks": [types], "crc_ok"}.

    sctp_peer.py client VIP VPORT CPORT
        Prints "ready", then reads steps from stdin, one per line: init,
        cookie, data, shutdown (each sends its chunk from CPORT and waits
        up to 5 s for the answer from VIP:VPORT), complete (sends SHUTDOWN
        COMPLETE, waits for nothing). Prints one JSON line per step:
        {"step", "chunks": [types] or null on timeout, "crc_ok", "src",
        "sport", "dport"}.
"""
import json
import os
import select
import socket
import struct
import sys
import time

INIT, INIT_ACK, SACK, DATA = 1, 2, 3, 0
SHUTDOWN, SHUTDOWN_ACK, COOKIE_ECHO, COOKIE_ACK = 7, 8, 10, 11
SHUTDOWN_COMPLETE = 14


def crc32c(data):
    """CRC32c bit by bit from the Castagnoli polynomial (RFC 9260 app. A)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def chunk(kind, flags, value):
    n = 4 + len(value)
    return struct.pack("!BBH", kind, flags, n) + value + b"\0" * (-n % 4)


def packet(sport, dport, vtag, chunks):
    p = struct.pack("!HHII", sport, dport, vtag, 0) + b"".join(chunks)
    # The CRC goes out least significant byte first (RFC 9260 app. A).
    return p[:8] + struct.pack("<I", crc32c(p)) + p[12:]


def parse(p):
    if len(p) < 12:
        return None
    sport, dport, vtag = struct.unpack("!HHI", p[:8])
    carried = struct.unpack("<I", p[8:12])[0]
    ok = crc32c(p[:8] + b"\0\0\0\0" + p[12:]) == carried
    chunks = []
    at = 12
    while at + 4 <= len(p):
        kind, _, n = struct.unpack("!BBH", p[at : at + 4])
        if n < 4:
            break
        chunks.append((kind, p[at + 4 : at + n]))
        at += (n + 3) & ~3
    return sport, dport, vtag, ok, chunks


class Raw:
    def __init__(self):
        self.s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, 132)
        self.s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 132)
        self.s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        self.bound = {}

    def recv(self, timeout):
        """(src, dst, sctp bytes) or None."""
        r, _, _ = select.select([self.s4, self.s6], [], [], timeout)
        if not r:
            return None
        s = r[0]
        if s is self.s4:
            data, addr = s.recvfrom(65535)
            # IPv4 raw sockets hand over the IP header too.
            dst = socket.inet_ntoa(data[16:20])
            return addr[0], dst, data[(data[0] & 0x0F) * 4 :]
        data, anc, _, addr = s.recvmsg(65535, 1024)
        dst = None
        for level, kind, value in anc:
            if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
                dst = socket.inet_ntop(socket.AF_INET6, value[:16])
        return addr[0], dst, data

    def send(self, dst, data, src=None):
        """From `src` when given (a DR real server answers from the VIP)."""
        v6 = ":" in dst
        s = self.s6 if v6 else self.s4
        if src is not None:
            if src not in self.bound:
                b = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW, 132)
                b.bind((src, 0))
                self.bound[src] = b
            s = self.bound[src]
        s.sendto(data, (dst, 0, 0, 0) if v6 else (dst, 0))


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def server(ports):
    raw = Raw()
    my_tag = 0x5E7E7A60
    peers = {}
    out("ready")
    while True:
        got = raw.recv(None)
        if got is None:
            continue
        src, dst, p = got
        parsed = parse(p)
        if parsed is None:
            continue
        sport, dport, vtag, ok, chunks = parsed
        if dport not in ports:
            continue
        out(
            {
                "src": src,
                "dst": dst,
                "sport": sport,
                "dport": dport,
                "chunks": [k for k, _ in chunks],
                "crc_ok": ok,
            }
        )
        if not ok or not chunks:
            continue
        kind, value = chunks[0]
        key = (src, sport)
        if kind == INIT and len(value) >= 16:
            peers[key] = struct.unpack("!I", value[:4])[0]
            cookie = struct.pack("!HH", 7, 4 + 12) + b"cookie-" + os.urandom(5)
            ack = struct.pack("!IIHHI", my_tag, 65536, 1, 1, 7000) + cookie
            reply = chunk(INIT_ACK, 0, ack)
        elif kind == COOKIE_ECHO:
            reply = chunk(COOKIE_ACK, 0, b"")
        elif kind == DATA and len(value) >= 4:
            reply = chunk(SACK, 0, value[:4] + struct.pack("!IHH", 65536, 0, 0))
        elif kind == SHUTDOWN:
            reply = chunk(SHUTDOWN_ACK, 0, b"")
        else:
            continue
        raw.send(src, packet(dport, sport, peers.get(key, 0), [reply]), dst)


def client(vip, vport, cport):
    raw = Raw()
    my_tag = 0x0C11E277
    peer_tag = 0
    cookie = b""
    expect = {
        "init": INIT_ACK,
        "cookie": COOKIE_ACK,
        "data": SACK,
        "shutdown": SHUTDOWN_ACK,
    }
    out("ready")
    for line in sys.stdin:
        step = line.strip()
        if step == "init":
            c = chunk(INIT, 0, struct.pack("!IIHHI", my_tag, 65536, 1, 1, 100))
            raw.send(vip, packet(cport, vport, 0, [c]))
        elif step == "cookie":
            raw.send(vip, packet(cport, vport, peer_tag, [chunk(COOKIE_ECHO, 0, cookie)]))
        elif step == "data":
            d = struct.pack("!IHHI", 100, 0, 0, 0) + b"hello through rvs"
            raw.send(vip, packet(cport, vport, peer_tag, [chunk(DATA, 3, d)]))
        elif step == "shutdown":
            s = chunk(SHUTDOWN, 0, struct.pack("!I", 6999))
            raw.send(vip, packet(cport, vport, peer_tag, [s]))
        elif step == "complete":
            raw.send(vip, packet(cport, vport, peer_tag, [chunk(SHUTDOWN_COMPLETE, 0, b"")]))
            out({"step": step, "sent": True})
            continue
        else:
            out({"step": step, "error": "unknown step"})
            continue
        deadline = time.monotonic() + 5
        answer = None
        while answer is None and time.monotonic() < deadline:
            got = raw.recv(max(0.0, deadline - time.monotonic()))
            if got is None:
                break
            src, _, p = got
            parsed = parse(p)
            if parsed is None:
                continue
            sport, dport, vtag, ok, chunks = parsed
            if dport != cport or not chunks or chunks[0][0] != expect[step]:
                continue
            answer = {
                "step": step,
                "chunks": [k for k, _ in chunks],
                "crc_ok": ok,
                "src": src,
                "sport": sport,
                "dport": dport,
                "vtag_ok": vtag == my_tag,
            }
            kind, value = chunks[0]
            if kind == INIT_ACK and len(value) >= 16:
                peer_tag = struct.unpack("!I", value[:4])[0]
                at = 16
                while at + 4 <= len(value):
                    t, n = struct.unpack("!HH", value[at : at + 4])
                    if n < 4:
                        break
                    if t == 7:
                        cookie = value[at + 4 : at + n]
                    at += (n + 3) & ~3
        out(answer or {"step": step, "chunks": None})


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server({int(p) for p in sys.argv[2].split(",")})
    else:
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
