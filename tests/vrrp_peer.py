#!/usr/bin/env python3
"""An independent look at rvsd's VRRP, for tests/vrrp.rs (standard library only).

  vrrp_peer.py capture IFACE SECONDS COUNT
      Prints one JSON line per IPv4 protocol-112 frame seen on IFACE (both
      directions), decoded here from RFC 5798 section 5.1's layout, with the
      checksum recomputed over the IPv4 pseudo header; stops after COUNT
      adverts or SECONDS.

  vrrp_peer.py arp IFACE SRC_IP TARGET_IP SECONDS
      Sends one ARP request for TARGET_IP from IFACE and prints a JSON list of
      the MACs that answered within SECONDS.
"""
import json
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
ETH_P_ARP = 0x0806


def mac(b):
    return ":".join("%02x" % x for x in b)


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def decode(frame):
    """The advert in an Ethernet frame, or None when it is not VRRP."""
    if len(frame) < 34:
        return None
    dst_mac, src_mac, ethertype = frame[0:6], frame[6:12], struct.unpack("!H", frame[12:14])[0]
    if ethertype != 0x0800:
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    ttl, proto = ip[8], ip[9]
    if proto != 112:
        return None
    src, dst = ip[12:16], ip[16:20]
    msg = ip[ihl:total]
    ver_type, vrid, prio, count, rsvd_int, cks = struct.unpack("!BBBBHH", msg[:8])
    addrs = [socket.inet_ntoa(msg[8 + 4 * i:12 + 4 * i]) for i in range(count)]
    pseudo = src + dst + struct.pack("!BBH", 0, 112, len(msg))
    return {
        "dst_mac": mac(dst_mac),
        "src_mac": mac(src_mac),
        "ttl": ttl,
        "src": socket.inet_ntoa(src),
        "dst": socket.inet_ntoa(dst),
        "ip_header_ok": csum(ip[:ihl]) == 0xFFFF,
        "version": ver_type >> 4,
        "type": ver_type & 0x0F,
        "vrid": vrid,
        "priority": prio,
        "count": count,
        "max_adver_int": rsvd_int & 0x0FFF,
        "checksum_ok": csum(pseudo + msg) == 0xFFFF,
        "addrs": addrs,
        "time": time.time(),
    }


def capture(iface, seconds, count):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    s.settimeout(0.1)
    end = time.time() + seconds
    seen = 0
    print("ready", file=sys.stderr, flush=True)
    while time.time() < end and seen < count:
        try:
            frame = s.recv(2048)
        except socket.timeout:
            continue
        d = decode(frame)
        if d is not None:
            print(json.dumps(d), flush=True)
            seen += 1


def arp(iface, src_ip, target_ip, seconds):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    s.bind((iface, 0))
    my_mac = s.getsockname()[4][:6]
    req = (
        b"\xff" * 6 + my_mac + struct.pack("!H", ETH_P_ARP)
        + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
        + my_mac + socket.inet_aton(src_ip) + b"\0" * 6 + socket.inet_aton(target_ip)
    )
    s.settimeout(0.05)
    s.send(req)
    end = time.time() + seconds
    macs = []
    while time.time() < end:
        try:
            f = s.recv(2048)
        except socket.timeout:
            continue
        if len(f) < 42 or f[12:14] != b"\x08\x06":
            continue
        op = struct.unpack("!H", f[20:22])[0]
        if op == 2 and f[28:32] == socket.inet_aton(target_ip) and f[0:6] == my_mac:
            macs.append(mac(f[22:28]))
    print(json.dumps(macs))


if __name__ == "__main__":
    if sys.argv[1] == "capture":
        capture(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "arp":
        arp(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
    else:
        sys.exit("usage: vrrp_peer.py capture|arp ...")
