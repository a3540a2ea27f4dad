#!/usr/bin/env python3
"""The hostile corpus of tests/hostile.rs: malformed and hostile Ethernet
frames, built here with the standard library only (checksums included), so
nothing of rvs vouches for what it is fed.

    corpus.py plan RVS_MAC              one JSON line per class: its name,
                                        how many frames, and what each must
                                        come to (a drop reason's count, or
                                        "conflict": an address conflict)
    corpus.py send RVS_MAC IFACE CLASS  sends that class on IFACE (AF_PACKET)

The expected outcome of every frame is worked out here from the RFCs and
the kernel's behaviour, frame by frame: the MAC filter (PACKET_OTHERHOST),
martian addresses (RFC 1812 5.3.7, ip_route_input_slow; RFC 4291,
ip6_rcv_core), lengths and checksums that do not add up (bad_header), TCP
segments other than a SYN for a service without a conn (no_conn), later
fragments whose first never came (frag_no_first), extension-header chains
rvs does not follow (ip_ext_header), neighbour answers nobody asked for
(unsolicited), ARP/ND claiming rvs's own addresses (a counted conflict).
"""
import json
import socket
import struct
import sys

ATK_MAC = bytes.fromhex("020000006666")
OTHER_MACS = [bytes.fromhex(m) for m in ("020000009999", "001122334455", "0a0000000001")]
BCAST = b"\xff" * 6

VIP4, PORT4, SRV4, ATK4 = "198.18.0.100", "198.18.0.1", "198.19.0.1", "198.18.0.66"
VIP6, PORT6, SRV6, ATK6 = "fd00:18::100", "fd00:18::1", "fd00:19::1", "fd00:18::66"
LINK6 = "fe80::66"
ALL_NODES = "ff02::1"

TCP, UDP, ICMP, SCTP, ICMP6 = 6, 17, 1, 132, 58
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 1, 2, 4, 8, 16, 32, 64, 128


def a4(s):
    return socket.inet_aton(s)


def a6(s):
    return socket.inet_pton(socket.AF_INET6, s)


def fold(data, start=0):
    if len(data) % 2:
        data += b"\0"
    s = start + sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def csum(data, start=0):
    return (~fold(data, start)) & 0xFFFF


def eth(dst, etype, payload, src=ATK_MAC):
    return dst + src + struct.pack("!H", etype) + payload


def ipv4(src, dst, proto, payload, ttl=64, ident=0x4242, frag=0, opts=b"",
         total=None, ihl=None, version=4, bad=False):
    hl = ihl if ihl is not None else 5 + len(opts) // 4
    tot = total if total is not None else 20 + len(opts) + len(payload)
    h = struct.pack("!BBHHHBBH4s4s", version << 4 | hl, 0, tot, ident, frag, ttl,
                    proto, 0, a4(src), a4(dst)) + opts
    c = csum(h) ^ (0x5A5A if bad else 0)
    return h[:10] + struct.pack("!H", c) + h[12:] + payload


def ipv6(src, dst, nh, payload, hlim=64, plen=None, version=6):
    n = len(payload) if plen is None else plen
    return struct.pack("!IHBB16s16s", version << 28, n, nh, hlim, a6(src), a6(dst)) + payload


def pseudo4(src, dst, proto, n):
    return fold(a4(src) + a4(dst) + struct.pack("!BBH", 0, proto, n))


def pseudo6(src, dst, proto, n):
    return fold(a6(src) + a6(dst) + struct.pack("!IxxxB", n, proto))


def tcp(src, dst, sport, dport, flags, v6=False, payload=b"", doff=5, bad=False,
        seq=1000, ack=2000):
    opts = b"\0" * max(0, (doff - 5) * 4) if doff > 5 else b""
    h = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, 64240,
                    0, 0) + opts
    seg = h + payload
    ps = (pseudo6 if v6 else pseudo4)(src, dst, TCP, len(seg))
    c = csum(seg, ps) ^ (0x1111 if bad else 0)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def udp(src, dst, sport, dport, payload=b"q", v6=False, length=None):
    n = 8 + len(payload) if length is None else length
    seg = struct.pack("!HHHH", sport, dport, n, 0) + payload
    ps = (pseudo6 if v6 else pseudo4)(src, dst, UDP, 8 + len(payload))
    c = csum(seg, ps) or 0xFFFF
    return seg[:6] + struct.pack("!H", c) + seg[8:]


def echo4(ident=7, seq=1, bad=False):
    m = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"ping"
    c = csum(m) ^ (0x2222 if bad else 0)
    return m[:2] + struct.pack("!H", c) + m[4:]


def icmp6(src, dst, typ, code, body, bad=False):
    m = struct.pack("!BBH", typ, code, 0) + body
    c = csum(m, pseudo6(src, dst, ICMP6, len(m))) ^ (0x3333 if bad else 0)
    return m[:2] + struct.pack("!H", c) + m[4:]


def echo6(src, dst, bad=False):
    return icmp6(src, dst, 128, 0, struct.pack("!HH", 9, 1) + b"ping", bad)


def arp(op, sha, spa, tha, tpa):
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, sha, a4(spa), tha, a4(tpa))


def solicited_node(addr):
    return "ff02::1:ff%02x:%02x%02x" % tuple(a6(addr)[13:16])


def mcast_mac(addr):
    return b"\x33\x33" + a6(addr)[12:16]


def ns(src, target, lla=ATK_MAC, hlim=255, cut=None, dst=None):
    body = struct.pack("!I16s", 0, a6(target)) + (b"\x01\x01" + lla if lla else b"")
    dst = dst or solicited_node(target)
    m = icmp6(src, dst, 135, 0, body)
    if cut is not None:
        m = m[:cut]
    return eth(mcast_mac(dst), 0x86DD, ipv6(src, dst, ICMP6, m, hlim=hlim))


def na(src, dst, target, flags=0x20, lla=ATK_MAC, dst_mac=None):
    body = struct.pack("!I16s", flags << 24, a6(target)) + b"\x02\x01" + lla
    m = icmp6(src, dst, 136, 0, body)
    mac = dst_mac or (mcast_mac(dst) if dst.startswith("ff") else None)
    return eth(mac, 0x86DD, ipv6(src, dst, ICMP6, m, hlim=255))


def tcp4(mac, src, dst, flags, sport=40000, **kw):
    return eth(mac, 0x0800, ipv4(src, dst, TCP, tcp(src, dst, sport, 80, flags), **kw))


def tcp6(mac, src, dst, flags, sport=40000):
    return eth(mac, 0x86DD, ipv6(src, dst, TCP, tcp(src, dst, sport, 80, flags, v6=True)))


def udp4(mac, src, dst, dport=53):
    return eth(mac, 0x0800, ipv4(src, dst, UDP, udp(src, dst, 5353, dport)))


def ping4(mac, src, dst, bad=False):
    return eth(mac, 0x0800, ipv4(src, dst, ICMP, echo4(bad=bad)))


def ping6(mac, src, dst, bad=False):
    return eth(mac, 0x86DD, ipv6(src, dst, ICMP6, echo6(src, dst, bad)))


def ext(nh, body):
    """An extension header (hop-by-hop, routing, destination options) of
    8 bytes per unit: next header, length in 8-byte units past the first."""
    n = (2 + len(body) + 7) // 8 * 8
    return struct.pack("!BB", nh, n // 8 - 1) + body + b"\0" * (n - 2 - len(body))


def padn():
    return b"\x01\x04\0\0\0\0"


def corpus(rvs):
    c = {}

    # Frames for other hosts' MACs: whatever they carry, other_host.
    f = []
    for mac in OTHER_MACS:
        f += [tcp4(mac, ATK4, VIP4, SYN), tcp6(mac, ATK6, VIP6, SYN), udp4(mac, ATK4, VIP4),
              ping4(mac, ATK4, PORT4), ping6(mac, ATK6, PORT6),
              eth(mac, 0x0806, arp(1, ATK_MAC, ATK4, b"\0" * 6, PORT4)),
              eth(mac, 0x0806, arp(2, ATK_MAC, ATK4, rvs, PORT4)),
              eth(mac, 0x88B5, b"local experimental ethertype"),
              eth(mac, 0x0800, b""), tcp4(mac, "127.0.0.1", VIP4, SYN)]
    c["other_host"] = [(x, "other_host") for x in f]

    # IPv4 martians (ip_route_input_slow; RFC 1812 5.3.7).
    sources = ["0.0.0.0", "0.1.2.3", "127.0.0.1", "127.255.255.254", "255.255.255.255",
               "224.0.0.1", "239.255.255.250", "240.0.0.1", "254.1.2.3",
               "198.18.0.255", "198.19.0.255", PORT4, SRV4]
    f = []
    for s in sources:
        f += [tcp4(rvs, s, VIP4, SYN), udp4(rvs, s, VIP4), ping4(rvs, s, PORT4)]
    f += [tcp4(rvs, ATK4, "127.0.0.1", SYN), tcp4(rvs, ATK4, "0.0.0.5", SYN),
          ping4(rvs, ATK4, "127.0.0.1")]
    # Group and zero source MACs (IEEE 802: no station sends from them).
    for src in ("01005e000001", "ffffffffffff", "000000000000", "333300000001"):
        f.append(eth(rvs, 0x0800, ipv4(ATK4, VIP4, TCP, tcp(ATK4, VIP4, 40000, 80, SYN)),
                     src=bytes.fromhex(src)))
    c["martian4"] = [(x, "martian") for x in f]

    # IPv6 martians (ip6_rcv_core; RFC 4291).
    f = []
    for s in ["ff02::1", "ff05::1:3", "::1", "::ffff:198.18.0.66", "::", PORT6, SRV6]:
        f.append(tcp6(rvs, s, VIP6, SYN))
    for s in ["ff02::1", "::1", "::ffff:198.18.0.66", "::", SRV6]:
        f.append(ping6(rvs, s, PORT6))
    f += [tcp6(rvs, ATK6, "::1", SYN),
          eth(mcast_mac("ff01::1"), 0x86DD, ipv6(ATK6, "ff01::1", ICMP6, echo6(ATK6, "ff01::1"))),
          eth(mcast_mac("ff00::1"), 0x86DD, ipv6(ATK6, "ff00::1", ICMP6, echo6(ATK6, "ff00::1")))]
    c["martian6"] = [(x, "martian") for x in f]

    # Packets from a VIP.
    f = [tcp4(rvs, VIP4, VIP4, SYN), tcp4(rvs, VIP4, VIP4, ACK), udp4(rvs, VIP4, VIP4),
         ping4(rvs, VIP4, PORT4), tcp6(rvs, VIP6, VIP6, SYN), tcp6(rvs, VIP6, VIP6, ACK)]
    c["from_a_vip"] = [(x, "martian") for x in f]

    # DHCP-like: 0.0.0.0 to the limited broadcast is no martian (the kernel
    # takes it as broadcast input); rvs serves no DHCP: not for it.
    bootp = ipv4("0.0.0.0", "255.255.255.255", UDP, udp("0.0.0.0", "255.255.255.255", 68, 67))
    c["dhcp_like"] = [(eth(BCAST, 0x0800, bootp), "not_for_us"),
                      (eth(rvs, 0x0800, bootp), "not_for_us")]

    # Truncated at every layer.
    syn4 = ipv4(ATK4, VIP4, TCP, tcp(ATK4, VIP4, 40001, 80, SYN))
    syn6 = ipv6(ATK6, VIP6, TCP, tcp(ATK6, VIP6, 40001, 80, SYN, v6=True))
    c["cut_ipv4"] = [(eth(rvs, 0x0800, syn4[:k]), "bad_header") for k in range(20)]
    c["cut_ipv6"] = [(eth(rvs, 0x86DD, syn6[:k]), "bad_header") for k in range(40)]
    req = arp(1, ATK_MAC, ATK4, b"\0" * 6, PORT4)
    c["cut_arp"] = [(eth(BCAST, 0x0806, req[:k]), "bad_header") for k in range(28)]
    f = []
    full = tcp(ATK4, VIP4, 40002, 80, ACK)
    f += [eth(rvs, 0x0800, ipv4(ATK4, VIP4, TCP, full[:k])) for k in range(20)]
    f += [eth(rvs, 0x0800, ipv4(ATK4, VIP4, TCP, tcp(ATK4, VIP4, 40003, 80, ACK, doff=d)))
          for d in range(5)]
    f.append(eth(rvs, 0x0800, ipv4(ATK4, VIP4, TCP, full[:12] + b"\xf0" + full[13:])))
    c["cut_tcp4"] = [(x, "bad_header") for x in f]
    full6 = tcp(ATK6, VIP6, 40002, 80, ACK, v6=True)
    c["cut_tcp6"] = [(eth(rvs, 0x86DD, ipv6(ATK6, VIP6, TCP, full6[:k])), "bad_header")
                     for k in range(20)]
    u = udp(ATK4, VIP4, 5353, 53, b"abcd")
    f = [eth(rvs, 0x0800, ipv4(ATK4, VIP4, UDP, u[:k])) for k in range(8)]
    f += [eth(rvs, 0x0800, ipv4(ATK4, VIP4, UDP, udp(ATK4, VIP4, 5353, 53, b"abcd", length=n)))
          for n in (0, 1, 7, 13, 100, 65535)]
    c["cut_udp4"] = [(x, "bad_header") for x in f]
    u6 = udp(ATK6, VIP6, 5353, 53, b"abcd", v6=True)
    c["cut_udp6"] = [(eth(rvs, 0x86DD, ipv6(ATK6, VIP6, UDP, u6[:k])), "bad_header")
                     for k in range(8)]
    sctp = struct.pack("!HHII", 40000, 3868, 0, 0) + struct.pack("!BBH", 1, 0, 20) + b"\0" * 16
    f = [eth(rvs, 0x0800, ipv4(ATK4, VIP4, SCTP, sctp[:k])) for k in range(16)]
    # A chunk length under 4, and one past the packet.
    for n in (0, 3, 200):
        bad = sctp[:14] + struct.pack("!H", n) + sctp[16:]
        f.append(eth(rvs, 0x0800, ipv4(ATK4, VIP4, SCTP, bad)))
    c["cut_sctp"] = [(x, "bad_header") for x in f]
    e = echo4()
    f = [eth(rvs, 0x0800, ipv4(ATK4, PORT4, ICMP, e[:k])) for k in range(8)]
    f += [ping4(rvs, ATK4, PORT4, bad=True), ping4(rvs, ATK4, VIP4, bad=True)]
    c["cut_icmp4"] = [(x, "bad_header") for x in f]
    e6 = echo6(ATK6, PORT6)
    f = [eth(rvs, 0x86DD, ipv6(ATK6, PORT6, ICMP6, e6[:k])) for k in range(4)]
    f += [ping6(rvs, ATK6, PORT6, bad=True), ping6(rvs, ATK6, VIP6, bad=True)]
    c["cut_icmp6"] = [(x, "bad_header") for x in f]
    # Neighbour solicitations cut short (checksums right), or forwarded
    # (hop limit below 255: RFC 4861 7.1.1).
    f = [ns(ATK6, PORT6, cut=k) for k in range(24)]
    f += [ns(ATK6, PORT6, hlim=64), ns(ATK6, PORT6, hlim=254)]
    c["cut_nd"] = [(x, "bad_header") for x in f]

    # IP lengths that do not add up.
    f = [eth(rvs, 0x0800, ipv4(ATK4, VIP4, TCP, tcp(ATK4, VIP4, 40004, 80, SYN), ihl=h))
         for h in range(5)]
    f += [eth(rvs, 0x0800, ipv4(ATK4, VIP4, TCP, tcp(ATK4, VIP4, 40005, 80, SYN), total=t))
          for t in (0, 19, 41, 1000, 65535)]
    f += [eth(rvs, 0x0800, ipv4(ATK4, VIP4, TCP, tcp(ATK4, VIP4, 40006, 80, SYN), ihl=15)),
          eth(rvs, 0x0800, ipv4(ATK4, VIP4, TCP, tcp(ATK4, VIP4, 40007, 80, SYN), version=6))]
    f += [eth(rvs, 0x0800, ipv4(ATK4, VIP4, TCP, tcp(ATK4, VIP4, 40008 + i, 80, SYN), bad=True))
          for i in range(4)]
    f += [eth(rvs, 0x86DD, ipv6(ATK6, VIP6, TCP, tcp(ATK6, VIP6, 40009, 80, SYN, v6=True),
                                plen=n)) for n in (21, 200, 65535)]
    f.append(eth(rvs, 0x86DD, ipv6(ATK6, VIP6, TCP, tcp(ATK6, VIP6, 40010, 80, SYN, v6=True),
                                   version=4)))
    c["ip_lengths"] = [(x, "bad_header") for x in f]

    # Every TCP flag combination that opens nothing (no SYN, or SYN with
    # RST), to a VIP, IPv4 and IPv6: no conn.
    combos = [fl for fl in range(256) if not (fl & SYN and not fl & RST)]
    c["tcp_flags4"] = [(tcp4(rvs, ATK4, VIP4, fl, sport=41000 + fl), "no_conn") for fl in combos]
    c["tcp_flags6"] = [(tcp6(rvs, ATK6, VIP6, fl, sport=41000 + fl), "no_conn") for fl in combos]

    # IPv4 options on segments that open nothing: stepped over, no conn;
    # a header length past the datagram: bad.
    options = [b"\x01\x01\x01\x01", b"\x00\x00\x00\x00", b"\x07\x07\x04" + b"\0" * 4 + b"\0",
               b"\x44\x0c\x05\x00" + b"\0" * 8, b"\x83\x07\x04" + a4("10.9.9.9") + b"\0",
               b"\x89\x07\x04" + a4("10.9.9.9") + b"\0", b"\x94\x04\x00\x00",
               b"\x9e\x04\xab\xcd", b"\x07\x00\x00\x00", b"\x07\x28\x04\x00"]
    f = [(tcp4(rvs, ATK4, VIP4, ACK, sport=42000 + i, opts=o), "no_conn")
         for i, o in enumerate(options)]
    for i, t in enumerate((24, 30)):
        f.append((tcp4(rvs, ATK4, VIP4, ACK, sport=42100 + i, opts=b"\x01" * 12, total=t),
                  "bad_header"))
    c["ipv4_options"] = f

    # IPv6 extension-header chains before a segment that opens nothing.
    seg = lambda sp: tcp(ATK6, VIP6, sp, 80, ACK, v6=True)
    frag_atomic = lambda nh: struct.pack("!BBHI", nh, 0, 0, 0x77)
    chains = [
        ([(0, ext(TCP, padn()))], "no_conn"),
        ([(60, ext(TCP, padn()))], "no_conn"),
        ([(43, ext(TCP, b"\x00\x00" + b"\0" * 4))], "no_conn"),
        ([(0, ext(60, padn())), (60, ext(TCP, padn()))], "no_conn"),
        ([(0, ext(43, padn())), (43, ext(60, b"\x00\x00" + b"\0" * 4)), (60, ext(TCP, padn()))],
         "no_conn"),
        ([(44, frag_atomic(TCP))], "no_conn"),
        # Segments left: the packet is not for the address it came to.
        ([(43, ext(TCP, b"\x00\x01" + b"\0" * 4 + a6(ATK6)))], "ip_ext_header"),
        # Nine headers: past the walker's bound.
        ([(60, ext(60, padn()))] * 8 + [(60, ext(TCP, padn()))], "ip_ext_header"),
        # Hop-by-hop not first, two fragment headers, a header past the end.
        ([(60, ext(0, padn())), (0, ext(TCP, padn()))], "bad_header"),
        ([(44, frag_atomic(44)), (44, frag_atomic(TCP))], "bad_header"),
        ([(60, struct.pack("!BB", TCP, 40) + padn())], "bad_header"),
    ]
    f = []
    for i, (hdrs, want) in enumerate(chains):
        body = b"".join(h for _, h in hdrs) + seg(43000 + i)
        f.append((eth(rvs, 0x86DD, ipv6(ATK6, VIP6, hdrs[0][0], body)), want))
    c["ipv6_ext"] = f

    # Fragments.
    f = []
    whole = tcp(ATK4, VIP4, 44000, 80, ACK, payload=b"x" * 32)
    for i, off in enumerate((1, 2, 8, 100, 8191)):
        # Later fragments whose first never came (offset 1: 8 bytes, over
        # the TCP header, RFC 1858).
        f.append((eth(rvs, 0x0800, ipv4(ATK4, VIP4, TCP, whole[8:24], ident=0x5000 + i,
                                         frag=off)), "frag_no_first"))
        f.append((eth(rvs, 0x0800, ipv4(ATK4, VIP4, UDP, b"u" * 16, ident=0x5100 + i,
                                         frag=0x2000 | off)), "frag_no_first"))
    for i in range(3):
        # First fragments of segments that open nothing.
        f.append((eth(rvs, 0x0800, ipv4(ATK4, VIP4, TCP, whole[:24], ident=0x5200 + i,
                                         frag=0x2000)), "no_conn"))
    for i, n in enumerate((8, 12)):
        # Tiny first fragments: the TCP header split (RFC 1858).
        f.append((eth(rvs, 0x0800, ipv4(ATK4, VIP4, TCP, whole[:n], ident=0x5300 + i,
                                         frag=0x2000)), "bad_header"))
    for i in range(4):
        h = struct.pack("!BBHI", TCP, 0, (8 + i) << 3 | 1, 0x6000 + i)
        f.append((eth(rvs, 0x86DD, ipv6(ATK6, VIP6, 44, h + b"y" * 16)), "frag_no_first"))
    # SCTP fragments: rvs does not balance them (the CRC covers the whole).
    f.append((eth(rvs, 0x0800, ipv4(ATK4, VIP4, SCTP, sctp, ident=0x5400, frag=0x2000)),
              "unsupported"))
    c["fragments"] = f

    # Checksums: a segment that opens nothing with a bad TCP checksum.
    c["bad_checksums"] = [
        (eth(rvs, 0x0800, ipv4(ATK4, VIP4, TCP, tcp(ATK4, VIP4, 45000 + i, 80, ACK, bad=True))),
         "no_conn") for i in range(3)]

    # ARP claiming rvs's addresses (port, VIP, the other port's, requests,
    # replies, gratuitous): conflicts, and nothing learned.
    f = [eth(BCAST, 0x0806, arp(1, ATK_MAC, PORT4, b"\0" * 6, ATK4)),
         eth(BCAST, 0x0806, arp(1, ATK_MAC, PORT4, b"\0" * 6, PORT4)),
         eth(BCAST, 0x0806, arp(1, ATK_MAC, VIP4, b"\0" * 6, VIP4)),
         eth(BCAST, 0x0806, arp(1, ATK_MAC, SRV4, b"\0" * 6, PORT4)),
         eth(rvs, 0x0806, arp(2, ATK_MAC, PORT4, rvs, PORT4)),
         eth(rvs, 0x0806, arp(2, ATK_MAC, VIP4, rvs, PORT4)),
         eth(BCAST, 0x0806, arp(2, ATK_MAC, VIP4, BCAST, VIP4)),
         eth(rvs, 0x0806, arp(1, ATK_MAC, VIP4, b"\0" * 6, PORT4))]
    c["arp_claims"] = [(x, "conflict") for x in f]

    # ND claiming them: advertisements of rvs's addresses, a solicitation
    # from one of them.
    f = [na(LINK6, ALL_NODES, PORT6), na(LINK6, ALL_NODES, VIP6), na(LINK6, ALL_NODES, SRV6),
         na(ATK6, PORT6, PORT6, flags=0x60, dst_mac=rvs), ns(VIP6, PORT6), ns(SRV6, PORT6)]
    c["nd_claims"] = [(x, "conflict") for x in f]

    # Answers nobody asked for: not learned.
    f = [eth(rvs, 0x0806, arp(2, ATK_MAC, "198.18.0.%d" % h, rvs, PORT4)) for h in (67, 68, 69)]
    f += [na("fd00:18::%x" % h, PORT6, "fd00:18::%x" % h, flags=0x60, dst_mac=rvs)
          for h in (0x67, 0x68)]
    f.append(na(LINK6, ALL_NODES, "fd00:18::69"))
    c["unsolicited"] = [(x, "unsolicited") for x in f]
    return c


def main():
    mode, rvs = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", ""))
    classes = corpus(rvs)
    if mode == "plan":
        for name, frames in classes.items():
            expect = {}
            for _, want in frames:
                expect[want] = expect.get(want, 0) + 1
            print(json.dumps({"class": name, "frames": len(frames), "expect": expect}))
    elif mode == "send":
        iface, name = sys.argv[3], sys.argv[4]
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        s.bind((iface, 0))
        for frame, _ in classes[name]:
            s.send(frame)
        print("sent", len(classes[name]))
    else:
        sys.exit("usage: corpus.py plan MAC | corpus.py send MAC IFACE CLASS")


if __name__ == "__main__":
    main()
