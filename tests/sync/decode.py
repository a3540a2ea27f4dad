"""An independent reader of the IPVS sync messages (version 1), from the
kernel's struct layout in net/netfilter/ipvs/ip_vs_sync.c: joins the group
on an interface, and writes one JSON line per entry of every message it
receives to stdout, until killed."""
import json
import socket
import struct
import sys

group, port, ifaddr = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", port))
mreq = socket.inet_aton(group) + socket.inet_aton(ifaddr)
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
print(json.dumps({"ready": True}), flush=True)
while True:
    data, (src, sport) = s.recvfrom(65535)
    # struct ip_vs_sync_mesg: reserved, syncid, size, nr_conns, version, spare
    reserved, syncid, size, nr, version, spare = struct.unpack_from("!BBHBbH", data, 0)
    msg = {"src": src, "len": len(data), "reserved": reserved, "syncid": syncid,
           "size": size, "nr_conns": nr, "version": version, "spare": spare}
    print(json.dumps({"message": msg}), flush=True)
    off = 8
    for _ in range(nr):
        # struct ip_vs_sync_v4 / _v6: type, protocol, ver_size, flags, state,
        # cport, vport, dport, fwmark, timeout, then caddr, vaddr, daddr
        typ, proto, ver_size, flags, state, cport, vport, dport, fwmark, timeout = \
            struct.unpack_from("!BBHIHHHHII", data, off)
        size = ver_size & 0x0FFF
        if typ & 1:
            fam, alen = socket.AF_INET6, 16
        else:
            fam, alen = socket.AF_INET, 4
        a = off + 24
        addrs = [socket.inet_ntop(fam, data[a + i * alen:a + (i + 1) * alen]) for i in range(3)]
        e = {"type": typ, "protocol": proto, "version": ver_size >> 12, "size": size,
             "flags": flags, "state": state, "cport": cport, "vport": vport,
             "dport": dport, "fwmark": fwmark, "timeout": timeout,
             "caddr": addrs[0], "vaddr": addrs[1], "daddr": addrs[2], "options": []}
        o = a + 3 * alen
        end = off + size
        while o < end:
            ptype, plen = data[o], data[o + 1]
            e["options"].append({"type": ptype, "data": data[o + 2:o + 2 + plen].hex()})
            o += 2 + plen
        print(json.dumps({"entry": e}), flush=True)
        # entries start 32-bit aligned
        off += (size + 3) & ~3
