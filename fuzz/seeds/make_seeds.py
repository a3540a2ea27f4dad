#!/usr/bin/env python3
"""Writes the seed corpora of rvs's fuzz targets (fuzz/corpus/*/seed-*):
valid frames for each service the pipeline target's director has, the
management frames rvsadm sends, ipvsadm lines and rvsd's shipped configs.
Run from the repository root; libFuzzer grows the corpora from these."""
import json
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip4(a):
    return bytes(int(x) for x in a.split("."))


def ip6(last, net=1):
    return struct.pack("!8H", 0xFD00, net, 0, 0, 0, 0, 0, last)


def eth(dst, src, ethertype, payload):
    return dst + src + struct.pack("!H", ethertype) + payload


MAC0 = bytes([2, 0, 0, 0, 0, 1])
MAC1 = bytes([2, 0, 0, 0, 0, 2])
CLIENT_MAC = bytes([2, 0, 0, 0, 0, 0x42])


def tcp(src, dst, sport, dport, flags, pseudo, payload=b"", opts=b""):
    off = (20 + len(opts)) // 4
    h = struct.pack("!HHIIBBHHH", sport, dport, 1000, 1 if flags & 0x10 else 0, off << 4, flags, 64240, 0, 0) + opts
    c = csum(pseudo(6, len(h) + len(payload)) + h + payload)
    return h[:16] + struct.pack("!H", c) + h[18:] + payload


def udp(sport, dport, pseudo, payload):
    h = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    c = csum(pseudo(17, len(h) + len(payload)) + h + payload) or 0xFFFF
    return h[:6] + struct.pack("!H", c) + payload


def v4(src, dst, proto, l4, ttl=64):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0x4000, ttl, proto, 0, ip4(src), ip4(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + l4


def pseudo4(src, dst):
    return lambda proto, n: ip4(src) + ip4(dst) + struct.pack("!BBH", 0, proto, n)


def v6(src, dst, proto, l4):
    return struct.pack("!IHBB", 6 << 28, len(l4), proto, 64) + src + dst + l4


def pseudo6(src, dst):
    return lambda proto, n: src + dst + struct.pack("!IxxxB", n, proto)


MSS = struct.pack("!BBH", 2, 4, 1460)


def frames():
    out = {}
    for i in range(4):
        vip = "198.18.0.%d" % (100 + i)
        p = pseudo4("203.0.113.9", vip)
        out["syn4-%d" % i] = (0, eth(MAC0, CLIENT_MAC, 0x0800, v4("203.0.113.9", vip, 6, tcp(None, None, 40000, 80, 0x02, p, opts=MSS))))
        out["ack4-%d" % i] = (0, eth(MAC0, CLIENT_MAC, 0x0800, v4("203.0.113.9", vip, 6, tcp(None, None, 40000, 80, 0x10, p, b"GET / HTTP/1.0\r\n\r\n"))))
        out["udp4-%d" % i] = (0, eth(MAC0, CLIENT_MAC, 0x0800, v4("203.0.113.9", vip, 17, udp(5353, 53, p, b"\x12\x34\x01\x00\x00\x01" + b"\0" * 6))))
        cl6, vip6 = ip6(0x99), ip6(0x100 + i)
        p6 = pseudo6(cl6, vip6)
        out["syn6-%d" % i] = (0, eth(MAC0, CLIENT_MAC, 0x86DD, v6(cl6, vip6, 6, tcp(None, None, 40001, 80, 0x02, p6, opts=MSS))))
        out["udp6-%d" % i] = (0, eth(MAC0, CLIENT_MAC, 0x86DD, v6(cl6, vip6, 17, udp(5353, 53, p6, b"query"))))
    # A real server's reply, on the servers' port.
    p = pseudo4("198.19.0.10", "198.19.0.1")
    out["reply4"] = (1, eth(MAC1, CLIENT_MAC, 0x0800, v4("198.19.0.10", "198.19.0.1", 6, tcp(None, None, 80, 1024, 0x12, p))))
    # A sync message for the backup daemon on the servers' port: one NAT
    # conn (fwd 0) of the NAT VIP 198.18.0.101:80 to 198.19.0.10:80,
    # ESTABLISHED, as the kernel's master sends it (ipvs-reference.md §7).
    entry = struct.pack("!BBHIHHHHII4s4s4s", 0, 6, 36, 0, 1, 40000, 80, 80, 0, 900,
                        ip4("203.0.113.9"), ip4("198.18.0.101"), ip4("198.19.0.10"))
    msg = struct.pack("!BBHBBH", 0, 0, 8 + len(entry), 1, 1, 0) + entry
    p = pseudo4("198.19.0.2", "224.0.0.81")
    out["sync4"] = (1, eth(bytes([1, 0, 0x5E, 0, 0, 0x51]), CLIENT_MAC, 0x0800,
                           v4("198.19.0.2", "224.0.0.81", 17, udp(8848, 8848, p, msg), ttl=1)))
    # ARP for the director, and a ping.
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, CLIENT_MAC, ip4("198.18.0.2"), b"\0" * 6, ip4("198.18.0.1"))
    out["arp"] = (0, eth(b"\xff" * 6, CLIENT_MAC, 0x0806, arp))
    icmp = struct.pack("!BBHHH", 8, 0, 0, 7, 1) + b"ping"
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    out["ping"] = (0, eth(MAC0, CLIENT_MAC, 0x0800, v4("198.18.0.2", "198.18.0.1", 1, icmp)))
    return out


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def main():
    fs = frames()
    for name, (port, f) in fs.items():
        write("wire", name, f)
        write("pipeline", name, bytes([port]) + struct.pack("!H", len(f)) + f)
    # Whole conversations: SYN then ACK, for each mode.
    for i in range(4):
        seq = b""
        for n in ("syn4-%d" % i, "ack4-%d" % i, "reply4"):
            port, f = fs[n]
            seq += bytes([port]) + struct.pack("!H", len(f)) + f
        write("pipeline", "conversation-%d" % i, seq)
    for name, args, inp in [
        ("list", ["-Ln"], None),
        ("add", ["-A", "-t", "10.0.0.1:80", "-s", "wlc"], None),
        ("restore", ["-R"], "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.1.1:80 -m\n"),
    ]:
        body = json.dumps({"version": 2, "prog": "ipvsadm", "args": args, "input": inp}).encode()
        write("ctl_frame", name, struct.pack("!I", len(body)) + body)
    lines = {
        "add-service": "-A\0-t\x0010.0.0.2:80\0-s\0wlc\0-p\x00300",
        "add-dest": "-a\0-t\x0010.0.0.1:80\0-r\x0010.1.1.2:8080\0-m\0-w\x003",
        "fullnat": "-a\0-t\x0010.0.0.1:80\0-r\x0010.1.1.3\0-b",
        "laddr": "-P\0-t\x0010.0.0.1:80\0-z\x0010.2.2.2\0-F\0p",
        "list-c": "-L\0-n\0-c",
        "tunnel": "-a\0-t\x0010.0.0.1:80\0-r\x0010.1.1.4\0-i\0--tun-type\0gue\0--tun-port\x006080",
        "restore": "-R\n-A -u [2001:db8::1]:53 -s sh -b sh-port\n-a -u [2001:db8::1]:53 -r [2001:db8::2]:53 -g\n",
        "set": "--set\x00900\x00120\x00300",
    }
    for name, text in lines.items():
        write("ipvsadm", name, text.encode())
    conf = os.path.join(ROOT, "conf")
    for f in sorted(os.listdir(conf)):
        if f.endswith(".toml"):
            with open(os.path.join(conf, f), "rb") as src:
                write("config", f, src.read())


if __name__ == "__main__":
    main()
