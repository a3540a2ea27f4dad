//! The expected listings below are ipvsadm 1.31's own output: its
//! ipvsadm.c (cezarsa/ipvsadm e61c8cd) built against stub libipvs calls
//! that return the same tables these tests build, with libipvs's sort
//! functions and glibc 2.36's qsort, reverse DNS failing (so the tables'
//! addresses print as numbers; [`Fixed`] names none of them) and Debian's
//! /etc/services; `-c` read kernel-format
//! /proc/net/ip_vs_conn lines. Expectations for what ipvsadm cannot print
//! (DPVS's FULLNAT rows) are built from DPVS's tools/ipvsadm format
//! strings.
use std::collections::HashMap;
use std::net::IpAddr;

use super::*;
use crate::ctl::names::Services;
use crate::ctl::{parse_restore_line, Command};
use crate::ipvs::{DestConfig, ServiceConfig, ServiceTable};

/// `ipvsadm -Ln` over `main_table()`
/// Debian netbase 6.4's /etc/services lines (comments dropped) for the
/// ports these tests name.
const NETBASE: &str = "\
ftp-data 20/tcp\n\
ftp 21/tcp\n\
ssh 22/tcp\n\
telnet 23/tcp\n\
smtp 25/tcp mail\n\
domain 53/tcp\n\
domain 53/udp\n\
tftp 69/udp\n\
http 80/tcp www\n\
pop3 110/tcp pop-3\n\
ntp 123/udp\n\
imap2 143/tcp imap\n\
snmp 161/tcp\n\
snmp 161/udp\n\
bgp 179/tcp\n\
ldap 389/tcp\n\
ldap 389/udp\n\
https 443/tcp\n\
https 443/udp\n\
microsoft-ds 445/tcp\n\
syslog 514/udp\n\
submission 587/tcp\n\
ldaps 636/tcp\n\
ldaps 636/udp\n\
rsync 873/tcp\n\
imaps 993/tcp\n\
pop3s 995/tcp\n\
openvpn 1194/tcp\n\
openvpn 1194/udp\n\
radius 1812/tcp\n\
radius 1812/udp\n\
radius-acct 1813/tcp radacct\n\
radius-acct 1813/udp radacct\n\
nfs 2049/tcp\n\
nfs 2049/udp\n\
mysql 3306/tcp\n\
sip 5060/tcp\n\
sip 5060/udp\n\
xmpp-client 5222/tcp jabber-client\n\
postgresql 5432/tcp postgres\n\
amqp 5672/tcp\n\
amqp 5672/sctp\n\
redis 6379/tcp\n\
http-alt 8080/tcp webcache\n\
";

/// The resolver of these tests: NETBASE's ports, and 127.0.0.1 named
/// `localhost` as every Debian /etc/hosts names it.
struct Fixed {
    services: Services,
    hosts: HashMap<IpAddr, String>,
}

impl Fixed {
    fn new() -> Fixed {
        Fixed::with_host("127.0.0.1", "localhost")
    }

    fn with_host(addr: &str, name: &str) -> Fixed {
        Fixed {
            services: Services::parse(NETBASE),
            hosts: HashMap::from([(addr.parse().unwrap(), name.to_owned())]),
        }
    }
}

impl Names for Fixed {
    fn port_name(&self, port: u16, proto: Protocol) -> Option<String> {
        self.services.port_name(port, proto)
    }

    fn host_name(&self, addr: IpAddr) -> Option<String> {
        self.hosts.get(&addr).cloned()
    }
}

const MAIN_LN: &[&str] = &[
    "IP Virtual Server version 1.2.1 (size=4096)",
    "Prot LocalAddress:Port Scheduler Flags",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
    "FWM  2147483649 rr",
    "TCP  10.0.0.1:80 wlc",
    "  -> 192.168.1.10:8080            Masq    3      5          7         ",
    "  -> 192.168.1.11:80              Route   1      3          12        ",
    "TCP  10.0.0.1:443 rr (flag-2) persistent 360 mask 255.255.255.0",
    "  -> 192.168.1.12:443             Local   0      0          0         ",
    "  -> [2001:db8::30]:443           Tunnel  1      1          0         ",
    "TCP  100.0.0.1:8080 wlc",
    "TCP  200.0.0.1:80 wlc",
    "UDP  10.0.0.2:53 sh (sh-fallback,sh-port) ops",
    "  -> 10.0.1.2:53                  Tunnel  2      0          9         ",
    "  -> 10.0.1.3:53                  Tunnel  2      0          4         ",
    "UDP  10.0.0.9:0 rr persistent 120 mask 255.255.0.0 pe sip ops",
    "SCTP 10.0.0.3:3868 fo (flag-1,flag-3)",
    "TCP  [2001:db8::1]:80 mh (mh-port) persistent 300 mask 64",
    "  -> [2001:db8::9]:8080           Masq    1      0          0         ",
    "  -> [2001:db8::10]:80            Masq    2      0          0         ",
    "FWM  5 wrr persistent 600 pe sip",
    "  -> 10.0.0.20:0                  Route   1      0          0         ",
    "  -> 10.0.0.21:80                 Masq    1      0          0         ",
    "FWM  7 IPv6 lc",
    "  -> [2001:db8::20]:0             Route   1      0          0         ",
];

/// `ipvsadm -L` over `main_table()`
const MAIN_L: &[&str] = &[
    "IP Virtual Server version 1.2.1 (size=4096)",
    "Prot LocalAddress:Port Scheduler Flags",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
    "FWM  2147483649 rr",
    "TCP  10.0.0.1:http wlc",
    "  -> 192.168.1.10:http-alt        Masq    3      5          7         ",
    "  -> 192.168.1.11:http            Route   1      3          12        ",
    "TCP  10.0.0.1:https rr (flag-2) persistent 360 mask 255.255.255.0",
    "  -> 192.168.1.12:https           Local   0      0          0         ",
    "  -> [2001:db8::30]:https         Tunnel  1      1          0         ",
    "TCP  100.0.0.1:http-alt wlc",
    "TCP  200.0.0.1:http wlc",
    "UDP  10.0.0.2:domain sh (sh-fallback,sh-port) ops",
    "  -> 10.0.1.2:domain              Tunnel  2      0          9         ",
    "  -> 10.0.1.3:domain              Tunnel  2      0          4         ",
    "UDP  10.0.0.9:0 rr persistent 120 mask 255.255.0.0 pe sip ops",
    "SCTP 10.0.0.3:3868 fo (flag-1,flag-3)",
    "TCP  [2001:db8::1]:http mh (mh-port) persistent 300 mask 64",
    "  -> [2001:db8::9]:http-alt       Masq    1      0          0         ",
    "  -> [2001:db8::10]:http          Masq    2      0          0         ",
    "FWM  5 wrr persistent 600 pe sip",
    "  -> 10.0.0.20:0                  Route   1      0          0         ",
    "  -> 10.0.0.21:80                 Masq    1      0          0         ",
    "FWM  7 IPv6 lc",
    "  -> [2001:db8::20]:0             Route   1      0          0         ",
];

/// `ipvsadm -Ln --nosort` over `main_table()`
const MAIN_NOSORT: &[&str] = &[
    "IP Virtual Server version 1.2.1 (size=4096)",
    "Prot LocalAddress:Port Scheduler Flags",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
    "TCP  10.0.0.1:80 wlc",
    "  -> 192.168.1.11:80              Route   1      3          12        ",
    "  -> 192.168.1.10:8080            Masq    3      5          7         ",
    "UDP  10.0.0.2:53 sh (sh-fallback,sh-port) ops",
    "  -> 10.0.1.3:53                  Tunnel  2      0          4         ",
    "  -> 10.0.1.2:53                  Tunnel  2      0          9         ",
    "TCP  10.0.0.1:443 rr (flag-2) persistent 360 mask 255.255.255.0",
    "  -> [2001:db8::30]:443           Tunnel  1      1          0         ",
    "  -> 192.168.1.12:443             Local   0      0          0         ",
    "SCTP 10.0.0.3:3868 fo (flag-1,flag-3)",
    "TCP  [2001:db8::1]:80 mh (mh-port) persistent 300 mask 64",
    "  -> [2001:db8::10]:80            Masq    2      0          0         ",
    "  -> [2001:db8::9]:8080           Masq    1      0          0         ",
    "FWM  5 wrr persistent 600 pe sip",
    "  -> 10.0.0.21:80                 Masq    1      0          0         ",
    "  -> 10.0.0.20:0                  Route   1      0          0         ",
    "FWM  7 IPv6 lc",
    "  -> [2001:db8::20]:0             Route   1      0          0         ",
    "TCP  200.0.0.1:80 wlc",
    "TCP  100.0.0.1:8080 wlc",
    "UDP  10.0.0.9:0 rr persistent 120 mask 255.255.0.0 pe sip ops",
    "FWM  2147483649 rr",
];

/// `ipvsadm -Ln --thresholds` over `main_table()`
const MAIN_THRESHOLDS: &[&str] = &[
    "IP Virtual Server version 1.2.1 (size=4096)",
    "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn ",
    "  -> RemoteAddress:Port",
    "FWM  2147483649 rr",
    "TCP  10.0.0.1:80 wlc",
    "  -> 192.168.1.10:8080            100        50         5          7         ",
    "  -> 192.168.1.11:80              0          0          3          12        ",
    "TCP  10.0.0.1:443 rr (flag-2) persistent 360 mask 255.255.255.0",
    "  -> 192.168.1.12:443             0          0          0          0         ",
    "  -> [2001:db8::30]:443           0          0          1          0         ",
    "TCP  100.0.0.1:8080 wlc",
    "TCP  200.0.0.1:80 wlc",
    "UDP  10.0.0.2:53 sh (sh-fallback,sh-port) ops",
    "  -> 10.0.1.2:53                  0          0          0          9         ",
    "  -> 10.0.1.3:53                  0          0          0          4         ",
    "UDP  10.0.0.9:0 rr persistent 120 mask 255.255.0.0 pe sip ops",
    "SCTP 10.0.0.3:3868 fo (flag-1,flag-3)",
    "TCP  [2001:db8::1]:80 mh (mh-port) persistent 300 mask 64",
    "  -> [2001:db8::9]:8080           0          0          0          0         ",
    "  -> [2001:db8::10]:80            0          0          0          0         ",
    "FWM  5 wrr persistent 600 pe sip",
    "  -> 10.0.0.20:0                  0          0          0          0         ",
    "  -> 10.0.0.21:80                 0          0          0          0         ",
    "FWM  7 IPv6 lc",
    "  -> [2001:db8::20]:0             0          0          0          0         ",
];

/// `ipvsadm -Ln --persistent-conn` over `main_table()`
const MAIN_PERSISTENT: &[&str] = &[
    "IP Virtual Server version 1.2.1 (size=4096)",
    "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn ",
    "  -> RemoteAddress:Port",
    "FWM  2147483649 rr",
    "TCP  10.0.0.1:80 wlc",
    "  -> 192.168.1.10:8080            3         2           5          7         ",
    "  -> 192.168.1.11:80              1         0           3          12        ",
    "TCP  10.0.0.1:443 rr (flag-2) persistent 360 mask 255.255.255.0",
    "  -> 192.168.1.12:443             0         1           0          0         ",
    "  -> [2001:db8::30]:443           1         0           1          0         ",
    "TCP  100.0.0.1:8080 wlc",
    "TCP  200.0.0.1:80 wlc",
    "UDP  10.0.0.2:53 sh (sh-fallback,sh-port) ops",
    "  -> 10.0.1.2:53                  2         0           0          9         ",
    "  -> 10.0.1.3:53                  2         0           0          4         ",
    "UDP  10.0.0.9:0 rr persistent 120 mask 255.255.0.0 pe sip ops",
    "SCTP 10.0.0.3:3868 fo (flag-1,flag-3)",
    "TCP  [2001:db8::1]:80 mh (mh-port) persistent 300 mask 64",
    "  -> [2001:db8::9]:8080           1         0           0          0         ",
    "  -> [2001:db8::10]:80            2         0           0          0         ",
    "FWM  5 wrr persistent 600 pe sip",
    "  -> 10.0.0.20:0                  1         0           0          0         ",
    "  -> 10.0.0.21:80                 1         0           0          0         ",
    "FWM  7 IPv6 lc",
    "  -> [2001:db8::20]:0             1         0           0          0         ",
];

/// `ipvsadm -Ln --tun-info` over `main_table()`
const MAIN_TUN_INFO: &[&str] = &[
    "IP Virtual Server version 1.2.1 (size=4096)",
    "Prot LocalAddress:Port Scheduler Flags",
    "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn",
    "FWM  2147483649 rr",
    "TCP  10.0.0.1:80 wlc",
    "  -> 192.168.1.10:8080            Masq    n/a           3      5          7         ",
    "  -> 192.168.1.11:80              Route   n/a           1      3          12        ",
    "TCP  10.0.0.1:443 rr (flag-2) persistent 360 mask 255.255.255.0",
    "  -> 192.168.1.12:443             Local   n/a           0      0          0         ",
    "  -> [2001:db8::30]:443           Tunnel  ipip          1      1          0         ",
    "TCP  100.0.0.1:8080 wlc",
    "TCP  200.0.0.1:80 wlc",
    "UDP  10.0.0.2:53 sh (sh-fallback,sh-port) ops",
    "  -> 10.0.1.2:53                  Tunnel  gue:6080:+c   2      0          9         ",
    "  -> 10.0.1.3:53                  Tunnel  gre:-c        2      0          4         ",
    "UDP  10.0.0.9:0 rr persistent 120 mask 255.255.0.0 pe sip ops",
    "SCTP 10.0.0.3:3868 fo (flag-1,flag-3)",
    "TCP  [2001:db8::1]:80 mh (mh-port) persistent 300 mask 64",
    "  -> [2001:db8::9]:8080           Masq    n/a           1      0          0         ",
    "  -> [2001:db8::10]:80            Masq    n/a           2      0          0         ",
    "FWM  5 wrr persistent 600 pe sip",
    "  -> 10.0.0.20:0                  Route   n/a           1      0          0         ",
    "  -> 10.0.0.21:80                 Masq    n/a           1      0          0         ",
    "FWM  7 IPv6 lc",
    "  -> [2001:db8::20]:0             Route   n/a           1      0          0         ",
];

/// `ipvsadm -Ln -t 10.0.0.1:80` over `main_table()`
const MAIN_ONE_TCP: &[&str] = &[
    "Prot LocalAddress:Port Scheduler Flags",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
    "TCP  10.0.0.1:80 wlc",
    "  -> 192.168.1.10:8080            Masq    3      5          7         ",
    "  -> 192.168.1.11:80              Route   1      3          12        ",
];

/// `ipvsadm -L -t [2001:db8::1]:80` over `main_table()`
const MAIN_ONE_V6_NAMES: &[&str] = &[
    "Prot LocalAddress:Port Scheduler Flags",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
    "TCP  [2001:db8::1]:http mh (mh-port) persistent 300 mask 64",
    "  -> [2001:db8::9]:http-alt       Masq    1      0          0         ",
    "  -> [2001:db8::10]:http          Masq    2      0          0         ",
];

/// `ipvsadm -Sn` over `main_table()`
const MAIN_SAVE_N: &[&str] = &[
    "-A -f 2147483649 -s rr",
    "-A -t 10.0.0.1:80 -s wlc",
    "-a -t 10.0.0.1:80 -r 192.168.1.10:8080 -m -w 3",
    "-a -t 10.0.0.1:80 -r 192.168.1.11:80 -g -w 1",
    "-A -t 10.0.0.1:443 -s rr -p 360 -M 255.255.255.0 -b flag-2",
    "-a -t 10.0.0.1:443 -r 192.168.1.12:443 -g -w 0",
    "-a -t 10.0.0.1:443 -r [2001:db8::30]:443 -i -w 1 --tun-type ipip",
    "-A -t 100.0.0.1:8080 -s wlc",
    "-A -t 200.0.0.1:80 -s wlc",
    "-A -u 10.0.0.2:53 -s sh -o -b sh-fallback,sh-port",
    "-a -u 10.0.0.2:53 -r 10.0.1.2:53 -i -w 2 --tun-type gue --tun-port 6080 --tun-csum",
    "-a -u 10.0.0.2:53 -r 10.0.1.3:53 -i -w 2 --tun-type gre --tun-nocsum",
    "-A -u 10.0.0.9:0 -s rr -p 120 -M 255.255.0.0 --pe sip -o",
    "-A --sctp-service 10.0.0.3:3868 -s fo -b flag-1,flag-3",
    "-A -t [2001:db8::1]:80 -s mh -p 300 -M 64 -b mh-port",
    "-a -t [2001:db8::1]:80 -r [2001:db8::9]:8080 -m -w 1",
    "-a -t [2001:db8::1]:80 -r [2001:db8::10]:80 -m -w 2",
    "-A -f 5 -s wrr -p 600 --pe sip",
    "-a -f 5 -r 10.0.0.20:0 -g -w 1",
    "-a -f 5 -r 10.0.0.21:80 -m -w 1",
    "-A -f 7 -6 -s lc",
    "-a -f 7 -6 -r [2001:db8::20]:0 -g -w 1",
];

/// `ipvsadm -S` over `main_table()`
const MAIN_SAVE: &[&str] = &[
    "-A -f 2147483649 -s rr",
    "-A -t 10.0.0.1:http -s wlc",
    "-a -t 10.0.0.1:http -r 192.168.1.10:http-alt -m -w 3",
    "-a -t 10.0.0.1:http -r 192.168.1.11:http -g -w 1",
    "-A -t 10.0.0.1:https -s rr -p 360 -M 255.255.255.0 -b flag-2",
    "-a -t 10.0.0.1:https -r 192.168.1.12:https -g -w 0",
    "-a -t 10.0.0.1:https -r [2001:db8::30]:https -i -w 1 --tun-type ipip",
    "-A -t 100.0.0.1:http-alt -s wlc",
    "-A -t 200.0.0.1:http -s wlc",
    "-A -u 10.0.0.2:domain -s sh -o -b sh-fallback,sh-port",
    "-a -u 10.0.0.2:domain -r 10.0.1.2:domain -i -w 2 --tun-type gue --tun-port 6080 --tun-csum",
    "-a -u 10.0.0.2:domain -r 10.0.1.3:domain -i -w 2 --tun-type gre --tun-nocsum",
    "-A -u 10.0.0.9:0 -s rr -p 120 -M 255.255.0.0 --pe sip -o",
    "-A --sctp-service 10.0.0.3:3868 -s fo -b flag-1,flag-3",
    "-A -t [2001:db8::1]:http -s mh -p 300 -M 64 -b mh-port",
    "-a -t [2001:db8::1]:http -r [2001:db8::9]:http-alt -m -w 1",
    "-a -t [2001:db8::1]:http -r [2001:db8::10]:http -m -w 2",
    "-A -f 5 -s wrr -p 600 --pe sip",
    "-a -f 5 -r 10.0.0.20:0 -g -w 1",
    "-a -f 5 -r 10.0.0.21:80 -m -w 1",
    "-A -f 7 -6 -s lc",
    "-a -f 7 -6 -r [2001:db8::20]:0 -g -w 1",
];

/// `ipvsadm -Ln --stats` over `stats_table()`
const STATS_N: &[&str] = &[
    "IP Virtual Server version 1.2.1 (size=4096)",
    "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
    "  -> RemoteAddress:Port",
    "TCP  10.0.0.1:80                   123456K 99999999    1000M     123G     987T",
    "  -> 192.168.1.10:8080             100000K  999999K   99999M     100G   99999G",
    "  -> 192.168.1.11:80                  100T18446744T        0        1 12345678",
    "TCP  [2001:db8::1]:443                   5      100      200    30000  4000000",
    "  -> [2001:db8::10]:443                  5      100      200    30000  4000000",
];

/// `ipvsadm -Ln --stats --exact` over `stats_table()`
const STATS_EXACT: &[&str] = &[
    "IP Virtual Server version 1.2.1 (size=4096)",
    "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
    "  -> RemoteAddress:Port",
    "TCP  10.0.0.1:80                  123456789 99999999 1000000000 123000000000 987000000000000",
    "  -> 192.168.1.10:8080            100000000 999999999 99999999999 100000000000 99999999999999",
    "  -> 192.168.1.11:80              100000000000000 18446744073709551615        0        1 12345678",
    "TCP  [2001:db8::1]:443                   5      100      200    30000  4000000",
    "  -> [2001:db8::10]:443                  5      100      200    30000  4000000",
];

/// `ipvsadm -L --stats` over `stats_table()`
const STATS_NAMES: &[&str] = &[
    "IP Virtual Server version 1.2.1 (size=4096)",
    "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
    "  -> RemoteAddress:Port",
    "TCP  10.0.0.1:http                 123456K 99999999    1000M     123G     987T",
    "  -> 192.168.1.10:http-alt         100000K  999999K   99999M     100G   99999G",
    "  -> 192.168.1.11:http                100T18446744T        0        1 12345678",
    "TCP  [2001:db8::1]:https                 5      100      200    30000  4000000",
    "  -> [2001:db8::10]:https                5      100      200    30000  4000000",
];

/// `ipvsadm -Ln --rate`
const RATE_N: &[&str] = &[
    "IP Virtual Server version 1.2.1 (size=4096)",
    "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS",
    "  -> RemoteAddress:Port",
    "TCP  10.0.0.1:80                   123456K        5 99999999    1500M     123G",
    "  -> 192.168.1.10:8080            123456789 100000000        7     100T       42",
];

/// `ipvsadm -Ln --rate --exact`
const RATE_EXACT: &[&str] = &[
    "IP Virtual Server version 1.2.1 (size=4096)",
    "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS",
    "  -> RemoteAddress:Port",
    "TCP  10.0.0.1:80                  123456789        5 99999999 1500000000 123000000000",
    "  -> 192.168.1.10:8080            123456789 100000000        7 100000000000000       42",
];

/// `ipvsadm -Ln` of addresses 2^31 or more apart
const QUIRK_SORTED: &[&str] = &[
    "IP Virtual Server version 1.2.1 (size=4096)",
    "Prot LocalAddress:Port Scheduler Flags",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
    "TCP  200.0.0.1:80 wlc",
    "TCP  10.0.0.1:80 wlc",
    "  -> 192.168.0.5:80               Masq    1      0          0         ",
    "  -> 10.0.0.5:79                  Masq    1      0          0         ",
    "  -> 10.0.0.5:80                  Masq    1      0          0         ",
];

/// `ipvsadm -Ln --nosort` of the same
const QUIRK_NOSORT: &[&str] = &[
    "IP Virtual Server version 1.2.1 (size=4096)",
    "Prot LocalAddress:Port Scheduler Flags",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
    "TCP  10.0.0.1:80 wlc",
    "  -> 10.0.0.5:80                  Masq    1      0          0         ",
    "  -> 192.168.0.5:80               Masq    1      0          0         ",
    "  -> 10.0.0.5:79                  Masq    1      0          0         ",
    "TCP  200.0.0.1:80 wlc",
];

/// `ipvsadm -Ln` of inet_ntop's special cases
const EDGE_LN: &[&str] = &[
    "IP Virtual Server version 1.2.1 (size=4096)",
    "Prot LocalAddress:Port Scheduler Flags",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
    "TCP  10.0.0.1:80 sh ()",
    "TCP  [::1.2.3.4]:80 wlc",
    "  -> [1:0:2:0:3:0:4:0]:80         Masq    1      0          0         ",
    "  -> [2001:db8::1:0:0:1]:80       Masq    1      0          0         ",
    "  -> [2001:db8:0:1::1]:80         Masq    1      0          0         ",
];

/// `ipvsadm -Sn` of the same
const EDGE_SAVE: &[&str] = &[
    "-A -t 10.0.0.1:80 -s sh -b ",
    "-A -t [::1.2.3.4]:80 -s wlc",
    "-a -t [::1.2.3.4]:80 -r [1:0:2:0:3:0:4:0]:80 -m -w 1",
    "-a -t [::1.2.3.4]:80 -r [2001:db8::1:0:0:1]:80 -m -w 1",
    "-a -t [::1.2.3.4]:80 -r [2001:db8:0:1::1]:80 -m -w 1",
];

/// `ipvsadm -Lnc`
const CONN_N: &[&str] = &[
    "IPVS connection entries",
    "pro expire state       source             virtual            destination",
    "TCP 15:00  ESTABLISHED 10.0.0.100:40000   10.0.0.1:80        192.168.1.10:8080",
    "UDP 04:59  UDP         10.0.0.101:40001   10.0.0.2:53        10.0.1.2:53",
    "TCP 05:59  NONE        10.0.0.100:0       10.0.0.1:443       192.168.1.12:443",
    "IP  10:00  ASSURED     10.0.0.100:0       0.0.0.5:0          10.0.0.20:0",
    "TCP 00:59  SYN_RECV    [2001:db8::100]:50000 [2001:db8::1]:80   [2001:db8::9]:8080",
    "UDP 02:00  UDP         10.0.0.101:5060    10.0.0.9:5060      10.0.0.21:5060",
    "UDP 02:00  NONE        10.0.0.101:0       10.0.0.9:0         10.0.0.21:0",
    "SCTP 100:01 ESTABLISHED 10.0.0.102:3356    10.0.0.3:3868      10.0.0.23:3868",
];

/// `ipvsadm -Lnc --persistent-conn`
const CONN_PERSISTENT: &[&str] = &[
    "IPVS connection entries",
    "pro expire state       source             virtual            destination        pe name          pe_data",
    "TCP 15:00  ESTABLISHED 10.0.0.100:40000   10.0.0.1:80        192.168.1.10:8080",
    "UDP 04:59  UDP         10.0.0.101:40001   10.0.0.2:53        10.0.1.2:53",
    "TCP 05:59  NONE        10.0.0.100:0       10.0.0.1:443       192.168.1.12:443",
    "IP  10:00  ASSURED     10.0.0.100:0       0.0.0.5:0          10.0.0.20:0",
    "TCP 00:59  SYN_RECV    [2001:db8::100]:50000 [2001:db8::1]:80   [2001:db8::9]:8080",
    "UDP 02:00  UDP         10.0.0.101:5060    10.0.0.9:5060      10.0.0.21:5060   sip                abc123@host",
    "UDP 02:00  NONE        10.0.0.101:0       10.0.0.9:0         10.0.0.21:0      sip                abc123@host",
    "SCTP 100:01 ESTABLISHED 10.0.0.102:3356    10.0.0.3:3868      10.0.0.23:3868",
];

/// `ipvsadm -Lc`
const CONN_NAMES: &[&str] = &[
    "IPVS connection entries",
    "pro expire state       source             virtual            destination",
    "TCP 15:00  ESTABLISHED 10.0.0.100:40000   10.0.0.1:http      192.168.1.10:http-alt",
    "UDP 04:59  UDP         10.0.0.101:40001   10.0.0.2:domain    10.0.1.2:domain",
    "TCP 05:59  NONE        10.0.0.100:0       10.0.0.1:https     192.168.1.12:https",
    "IP  10:00  ASSURED     10.0.0.100:0       0.0.0.5:0          10.0.0.20:0",
    "TCP 00:59  SYN_RECV    [2001:db8::100]:50000 [2001:db8::1]:http [2001:db8::9]:http-alt",
    "UDP 02:00  UDP         10.0.0.101:sip     10.0.0.9:sip       10.0.0.21:sip",
    "UDP 02:00  NONE        10.0.0.101:0       10.0.0.9:0         10.0.0.21:0",
    "SCTP 100:01 ESTABLISHED 10.0.0.102:3356    10.0.0.3:3868      10.0.0.23:3868",
];

fn text(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn addr_key(proto: Protocol, addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto,
        addr: ip(addr),
        port,
    }
}

fn fwm(mark: u32, ipv6: bool) -> ServiceKey {
    ServiceKey::Fwmark { mark, ipv6 }
}

/// The tunnels and extras rvs keeps beside the table.
#[derive(Default)]
struct Notes {
    tunnels: HashMap<(ServiceKey, IpAddr, u16), Tunnel>,
    extras: HashMap<ServiceKey, ServiceExtras>,
}

impl Annotations for Notes {
    fn tunnel(&self, service: &ServiceKey, dest: &Dest) -> Option<Tunnel> {
        self.tunnels
            .get(&(*service, dest.addr(), dest.port()))
            .copied()
    }
    fn extras(&self, service: &ServiceKey) -> ServiceExtras {
        self.extras.get(service).copied().unwrap_or_default()
    }
}

struct Table {
    t: ServiceTable,
    notes: Notes,
}

impl Table {
    fn new() -> Table {
        Table {
            t: ServiceTable::new(1),
            notes: Notes::default(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn svc(
        &mut self,
        key: ServiceKey,
        sched: &str,
        flags: u32,
        persistent: Option<u32>,
        netmask: Option<Netmask>,
        pe: Option<&str>,
        ops: bool,
    ) {
        let mut c = ServiceConfig::new(key);
        c.scheduler = sched.into();
        c.sched_flags = SchedFlags(flags);
        c.persistent = persistent;
        if let Some(m) = netmask {
            c.netmask = m;
        }
        c.pe = pe.map(str::to_string);
        c.one_packet = ops;
        self.t.add_service(c).unwrap();
    }

    /// Adds a dest (at the head of the list, as the kernel does) and
    /// returns it for its counters.
    fn dest(
        &mut self,
        key: ServiceKey,
        addr: &str,
        port: u16,
        fwd: FwdMethod,
        weight: i32,
    ) -> Arc<Dest> {
        self.dest_th(key, addr, port, fwd, weight, 0, 0)
    }

    #[allow(clippy::too_many_arguments)]
    fn dest_th(
        &mut self,
        key: ServiceKey,
        addr: &str,
        port: u16,
        fwd: FwdMethod,
        weight: i32,
        u: u32,
        l: u32,
    ) -> Arc<Dest> {
        let mut c = DestConfig::new(ip(addr), port);
        c.fwd = fwd;
        c.weight = weight;
        c.u_threshold = u;
        c.l_threshold = l;
        self.t.add_dest(&key, c).unwrap();
        self.t.get(&key).unwrap().dests()[0].clone()
    }

    fn tunnel(&mut self, key: ServiceKey, addr: &str, port: u16, t: Tunnel) {
        self.notes.tunnels.insert((key, ip(addr), port), t);
    }

    fn list(&self, opts: ListOptions) -> String {
        list_with(self.t.services(), &opts, 4096, &self.notes, &Fixed::new()).unwrap()
    }

    fn save(&self, numeric: bool) -> String {
        save_with(self.t.services(), numeric, &self.notes, &Fixed::new())
    }
}

fn numeric() -> ListOptions {
    ListOptions {
        numeric: true,
        ..ListOptions::default()
    }
}

fn view(view: ListView) -> ListOptions {
    ListOptions { view, ..numeric() }
}

/// main.spec: every service kind, flag and forwarding method of ipvsadm.
fn main_table() -> Table {
    use FwdMethod::{DirectRoute, Local, Masq};
    use Protocol::*;
    let mut t = Table::new();
    let k = addr_key(Tcp, "10.0.0.1", 80);
    t.svc(k, "wlc", 0, None, None, None, false);
    let d = t.dest_th(k, "192.168.1.10", 8080, Masq, 3, 100, 50);
    d.set_conns(5, 7);
    d.template_bound(0, true);
    d.template_bound(0, true);
    t.dest(k, "192.168.1.11", 80, DirectRoute, 1)
        .set_conns(3, 12);

    let k = addr_key(Udp, "10.0.0.2", 53);
    let sh = SchedFlags::SCHED1 | SchedFlags::SCHED2;
    t.svc(k, "sh", sh, None, None, None, true);
    t.dest(k, "10.0.1.2", 53, FwdMethod::Tunnel, 2)
        .set_conns(0, 9);
    let gue = Tunnel::Gue {
        port: 6080,
        csum: TunnelCsum::Csum,
    };
    t.tunnel(k, "10.0.1.2", 53, gue);
    t.dest(k, "10.0.1.3", 53, FwdMethod::Tunnel, 2)
        .set_conns(0, 4);
    let gre = Tunnel::Gre {
        csum: TunnelCsum::NoCsum,
    };
    t.tunnel(k, "10.0.1.3", 53, gre);

    let k = addr_key(Tcp, "10.0.0.1", 443);
    let mask = Some(Netmask::V4(0xffff_ff00));
    t.svc(k, "rr", SchedFlags::SCHED2, Some(360), mask, None, false);
    t.dest(k, "192.168.1.12", 443, Local, 0)
        .template_bound(0, true);
    t.dest(k, "2001:db8::30", 443, FwdMethod::Tunnel, 1)
        .set_conns(1, 0);
    t.tunnel(k, "2001:db8::30", 443, Tunnel::Ipip);

    let k = addr_key(Sctp, "10.0.0.3", 3868);
    let flags = SchedFlags::SCHED1 | SchedFlags::SCHED3;
    t.svc(k, "fo", flags, None, None, None, false);

    let k = addr_key(Tcp, "2001:db8::1", 80);
    let mask = Some(Netmask::V6(64));
    t.svc(k, "mh", SchedFlags::SCHED2, Some(300), mask, None, false);
    t.dest(k, "2001:db8::9", 8080, Masq, 1);
    t.dest(k, "2001:db8::10", 80, Masq, 2);

    let k = fwm(5, false);
    t.svc(k, "wrr", 0, Some(600), None, Some("sip"), false);
    t.dest(k, "10.0.0.20", 0, DirectRoute, 1);
    t.dest(k, "10.0.0.21", 80, Masq, 1);

    let k = fwm(7, true);
    t.svc(k, "lc", 0, None, None, None, false);
    t.dest(k, "2001:db8::20", 0, DirectRoute, 1);

    t.svc(
        addr_key(Tcp, "200.0.0.1", 80),
        "wlc",
        0,
        None,
        None,
        None,
        false,
    );
    t.svc(
        addr_key(Tcp, "100.0.0.1", 8080),
        "wlc",
        0,
        None,
        None,
        None,
        false,
    );
    let mask = Some(Netmask::V4(0xffff_0000));
    let k = addr_key(Udp, "10.0.0.9", 0);
    t.svc(k, "rr", 0, Some(120), mask, Some("sip"), true);
    t.svc(fwm(2_147_483_649, false), "rr", 0, None, None, None, false);
    t
}

#[test]
fn default_listing_is_ipvsadms() {
    let t = main_table();
    assert_eq!(t.list(numeric()), text(MAIN_LN));
}

#[test]
fn without_n_ports_are_service_names_and_addresses_stay_numeric() {
    let t = main_table();
    assert_eq!(t.list(ListOptions::default()), text(MAIN_L));
}

#[test]
fn nosort_keeps_table_order_and_newest_dest_first() {
    let t = main_table();
    let opts = ListOptions {
        nosort: true,
        ..numeric()
    };
    assert_eq!(t.list(opts), text(MAIN_NOSORT));
}

#[test]
fn thresholds_persistent_conn_and_tun_info_views() {
    let t = main_table();
    assert_eq!(t.list(view(ListView::Thresholds)), text(MAIN_THRESHOLDS));
    assert_eq!(
        t.list(view(ListView::PersistentConn)),
        text(MAIN_PERSISTENT)
    );
    assert_eq!(t.list(view(ListView::TunInfo)), text(MAIN_TUN_INFO));
}

#[test]
fn one_service_has_no_version_header() {
    let t = main_table();
    let opts = ListOptions {
        service: Some(addr_key(Protocol::Tcp, "10.0.0.1", 80)),
        ..numeric()
    };
    assert_eq!(t.list(opts), text(MAIN_ONE_TCP));
    let opts = ListOptions {
        service: Some(addr_key(Protocol::Tcp, "2001:db8::1", 80)),
        ..ListOptions::default()
    };
    assert_eq!(t.list(opts), text(MAIN_ONE_V6_NAMES));
}

#[test]
fn a_missing_service_is_libipvs_esrch() {
    let t = main_table();
    let opts = ListOptions {
        service: Some(addr_key(Protocol::Tcp, "0.0.0.0", 1)),
        ..numeric()
    };
    let e = list(t.t.services(), &opts, 4096, &Fixed::new()).unwrap_err();
    assert_eq!(e, FormatError::NoSuchService);
    assert_eq!(
        format!("{e}\n"),
        text(&MAIN_ONE_MISSING[..]),
        "list_service's stderr"
    );
    assert_eq!(e.exit_code(), 1);
}

const MAIN_ONE_MISSING: [&str; 1] = ["No such service"];

#[test]
fn header_size_is_the_conn_table_size() {
    let t = Table::new();
    let got = list(t.t.services(), &numeric(), 1 << 20, &Fixed::new()).unwrap();
    assert_eq!(
        got,
        "IP Virtual Server version 1.2.1 (size=1048576)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
    );
}

#[test]
fn save_is_ipvsadms() {
    let t = main_table();
    assert_eq!(t.save(true), text(MAIN_SAVE_N));
    assert_eq!(t.save(false), text(MAIN_SAVE));
}

#[test]
fn save_matches_the_references_example() {
    use FwdMethod::Masq;
    use Protocol::*;
    let mut t = Table::new();
    let k = addr_key(Tcp, "10.0.0.1", 443);
    let mask = Some(Netmask::V4(0xffff_ff00));
    t.svc(k, "rr", 0, Some(360), mask, None, false);
    let k80 = addr_key(Tcp, "10.0.0.1", 80);
    t.svc(k80, "wlc", 0, None, None, None, false);
    t.dest(k80, "192.168.1.10", 8080, Masq, 3);
    let k = addr_key(Udp, "10.0.0.2", 53);
    let sh = SchedFlags::SCHED1 | SchedFlags::SCHED2;
    t.svc(k, "sh", sh, None, None, None, true);
    t.dest(k, "10.0.1.2", 53, FwdMethod::Tunnel, 2);
    let gue = Tunnel::Gue {
        port: 6080,
        csum: TunnelCsum::Csum,
    };
    t.tunnel(k, "10.0.1.2", 53, gue);
    t.dest(k, "10.0.1.3", 53, FwdMethod::Tunnel, 2);
    let gre = Tunnel::Gre {
        csum: TunnelCsum::NoCsum,
    };
    t.tunnel(k, "10.0.1.3", 53, gre);
    let k = addr_key(Sctp, "10.0.0.3", 3868);
    let flags = SchedFlags::SCHED1 | SchedFlags::SCHED3;
    t.svc(k, "fo", flags, None, None, None, false);
    let k = addr_key(Tcp, "2001:db8::1", 80);
    let mask = Some(Netmask::V6(64));
    t.svc(k, "mh", SchedFlags::SCHED2, Some(300), mask, None, false);
    t.svc(fwm(5, false), "wrr", 0, Some(600), None, Some("sip"), false);
    t.svc(fwm(7, true), "lc", 0, None, None, None, false);
    // ../shared/ipvs-reference.md §2 "Save", in the listing's order.
    let reference = [
        "-A -t 10.0.0.1:443 -s rr -p 360 -M 255.255.255.0",
        "-A -u 10.0.0.2:53 -s sh -o -b sh-fallback,sh-port",
        "-A --sctp-service 10.0.0.3:3868 -s fo -b flag-1,flag-3",
        "-A -t [2001:db8::1]:80 -s mh -p 300 -M 64 -b mh-port",
        "-A -f 5 -s wrr -p 600 --pe sip",
        "-A -f 7 -6 -s lc",
        "-a -t 10.0.0.1:80 -r 192.168.1.10:8080 -m -w 3",
        "-a -u 10.0.0.2:53 -r 10.0.1.2:53 -i -w 2 --tun-type gue --tun-port 6080 --tun-csum",
        "-a -u 10.0.0.2:53 -r 10.0.1.3:53 -i -w 2 --tun-type gre --tun-nocsum",
    ];
    let got = t.save(true);
    for line in reference {
        assert!(
            got.lines().any(|l| l == line),
            "{line:?} missing from\n{got}"
        );
    }
    let got: Vec<&str> = got.lines().collect();
    assert_eq!(
        got.len(),
        1 + reference.len(),
        "the extra -A -t 10.0.0.1:80"
    );
    assert_eq!(got[0], "-A -t 10.0.0.1:80 -s wlc");
    assert_eq!(got[1], reference[6]);
    assert_eq!(got[2], reference[0]);
}

/// Reads `-S` output back as `-R` would, into a fresh table.
fn restore(saved: &str) -> Table {
    let mut t = Table::new();
    for line in saved.lines() {
        match parse_restore_line(line).unwrap().unwrap() {
            Command::AddService(cfg, extras) => {
                if extras != ServiceExtras::default() {
                    t.notes.extras.insert(cfg.key, extras);
                }
                t.t.add_service(cfg).unwrap();
            }
            Command::AddDest(key, cfg, tunnel) => {
                t.t.add_dest(&key, cfg).unwrap();
                let port = t.t.get(&key).unwrap().dests()[0].port();
                if let Some(tun) = tunnel {
                    t.notes.tunnels.insert((key, cfg.addr, port), tun);
                }
            }
            other => panic!("{line:?} is {other:?}"),
        }
    }
    t
}

#[test]
fn save_round_trips_through_restore() {
    let t = main_table();
    for numeric in [true, false] {
        let saved = t.save(numeric);
        assert_eq!(restore(&saved).save(numeric), saved, "numeric={numeric}");
    }
    let t = dpvs_table();
    let saved = t.save(true);
    assert_eq!(restore(&saved).save(true), saved);
}

/// stats.spec: counters at each print_largenum boundary.
fn stats_table() -> Table {
    use Protocol::*;
    let mut t = Table::new();
    let k = addr_key(Tcp, "10.0.0.1", 80);
    t.svc(k, "wlc", 0, None, None, None, false);
    let set = |s: &crate::ipvs::Stats, v: [u64; 5]| {
        let w = s.worker(0);
        w.conns.add(v[0]);
        w.inpkts.add(v[1]);
        w.outpkts.add(v[2]);
        w.inbytes.add(v[3]);
        w.outbytes.add(v[4]);
    };
    set(
        &t.t.get(&k).unwrap().stats,
        [
            123_456_789,
            99_999_999,
            1_000_000_000,
            123_000_000_000,
            987_000_000_000_000,
        ],
    );
    let d = t.dest(k, "192.168.1.10", 8080, FwdMethod::Masq, 3);
    set(
        &d.stats,
        [
            100_000_000,
            999_999_999,
            99_999_999_999,
            100_000_000_000,
            99_999_999_999_999,
        ],
    );
    let d = t.dest(k, "192.168.1.11", 80, FwdMethod::DirectRoute, 1);
    set(&d.stats, [100_000_000_000_000, u64::MAX, 0, 1, 12_345_678]);
    let k = addr_key(Tcp, "2001:db8::1", 443);
    t.svc(k, "rr", 0, None, None, None, false);
    let v = [5, 100, 200, 30_000, 4_000_000];
    set(&t.t.get(&k).unwrap().stats, v);
    let d = t.dest(k, "2001:db8::10", 443, FwdMethod::DirectRoute, 1);
    set(&d.stats, v);
    t
}

#[test]
fn stats_view_suffixes_each_boundary_and_exact_does_not() {
    let t = stats_table();
    assert_eq!(t.list(view(ListView::Stats)), text(STATS_N));
    let exact = ListOptions {
        exact: true,
        ..view(ListView::Stats)
    };
    assert_eq!(t.list(exact), text(STATS_EXACT));
    let names = ListOptions {
        view: ListView::Stats,
        ..ListOptions::default()
    };
    assert_eq!(t.list(names), text(STATS_NAMES));
}

#[test]
fn the_references_stats_example() {
    let t = stats_table();
    let got = t.list(view(ListView::Stats));
    assert!(got.contains(
        "\nTCP  10.0.0.1:80                   123456K 99999999    1000M     123G     987T\n"
    ));
}

#[test]
fn rate_view_prints_dest_packet_rates_plainly() {
    let mut t = Table::new();
    let k = addr_key(Protocol::Tcp, "10.0.0.1", 80);
    t.svc(k, "wlc", 0, None, None, None, false);
    let d = t.dest(k, "192.168.1.10", 8080, FwdMethod::Masq, 3);
    let svc = t.t.get(&k).unwrap().clone();
    let svc_rates = [123_456_789, 5, 99_999_999, 1_500_000_000, 123_000_000_000];
    let dest_rates = [123_456_789, 100_000_000, 7, 100_000_000_000_000, 42];
    // Steady traffic: the kernel's EWMA settles on the exact rate.
    for _ in 0..200 {
        for (s, r) in [(&*svc.stats, svc_rates), (&d.stats, dest_rates)] {
            let w = s.worker(0);
            w.conns.add(2 * r[0]);
            w.inpkts.add(2 * r[1]);
            w.outpkts.add(2 * r[2]);
            w.inbytes.add(2 * r[3]);
            w.outbytes.add(2 * r[4]);
            s.estimate();
        }
    }
    assert_eq!(t.list(view(ListView::Rate)), text(RATE_N));
    let exact = ListOptions {
        exact: true,
        ..view(ListView::Rate)
    };
    assert_eq!(t.list(exact), text(RATE_EXACT));
}

#[test]
fn largenum_boundaries() {
    let cases: [(u64, &str, &str); 12] = [
        (0, "        0", "        0"),
        (99_999_999, " 99999999", " 99999999"),
        (100_000_000, "  100000K", " 100000000"),
        (999_999_999, "  999999K", " 999999999"),
        (1_000_000_000, "    1000M", " 1000000000"),
        (99_999_999_999, "   99999M", " 99999999999"),
        (100_000_000_000, "     100G", " 100000000000"),
        (99_999_999_999_999, "   99999G", " 99999999999999"),
        (100_000_000_000_000, "     100T", " 100000000000000"),
        (987_000_000_000_000, "     987T", " 987000000000000"),
        (12_345_678_901_234_567, "   12345T", " 12345678901234567"),
        (u64::MAX, "18446744T", " 18446744073709551615"),
    ];
    for (i, short, exact) in cases {
        let mut s = String::new();
        largenum(&mut s, i, false);
        assert_eq!(s, short, "{i}");
        s.clear();
        largenum(&mut s, i, true);
        assert_eq!(s, exact, "{i} --exact");
    }
}

#[test]
fn sorting_wraps_like_libipvs_int_subtraction() {
    use FwdMethod::Masq;
    let mut t = Table::new();
    let k = addr_key(Protocol::Tcp, "10.0.0.1", 80);
    t.svc(k, "wlc", 0, None, None, None, false);
    t.dest(k, "10.0.0.5", 79, Masq, 1);
    t.dest(k, "192.168.0.5", 80, Masq, 1);
    t.dest(k, "10.0.0.5", 80, Masq, 1);
    let k = addr_key(Protocol::Tcp, "200.0.0.1", 80);
    t.svc(k, "wlc", 0, None, None, None, false);
    assert_eq!(t.list(numeric()), text(QUIRK_SORTED));
    let opts = ListOptions {
        nosort: true,
        ..numeric()
    };
    assert_eq!(t.list(opts), text(QUIRK_NOSORT));
}

#[test]
fn services_sort_by_fwmark_af_protocol_address_port() {
    use Protocol::*;
    let mut t = Table::new();
    let keys = [
        fwm(3, true),
        fwm(3, false),
        fwm(1, false),
        addr_key(Sctp, "10.0.0.1", 1),
        addr_key(Tcp, "2001:db8::1", 80),
        addr_key(Udp, "10.0.0.1", 80),
        addr_key(Tcp, "10.0.0.2", 80),
        addr_key(Tcp, "10.0.0.1", 443),
        addr_key(Tcp, "10.0.0.1", 80),
        addr_key(Tcp, "::1", 80),
    ];
    for k in keys {
        t.svc(k, "rr", 0, None, None, None, false);
    }
    let got: Vec<ServiceKey> = sorted(t.t.services(), false)
        .iter()
        .map(|s| s.key())
        .collect();
    let want = [
        keys[8], keys[7], keys[6], keys[5], keys[3], keys[9], keys[4], keys[2], keys[1], keys[0],
    ];
    assert_eq!(got, want);
    let kept: Vec<ServiceKey> = sorted(t.t.services(), true)
        .iter()
        .map(|s| s.key())
        .collect();
    assert_eq!(kept, keys, "--nosort: the table's order");
}

#[test]
fn ipv6_text_is_glibcs_inet_ntop() {
    let mut t = Table::new();
    let k = addr_key(Protocol::Tcp, "::102:304", 80);
    t.svc(k, "wlc", 0, None, None, None, false);
    for a in ["2001:db8:0:1::1", "1:0:2:0:3:0:4:0", "2001:db8::1:0:0:1"] {
        t.dest(k, a, 80, FwdMethod::Masq, 1);
    }
    let k = addr_key(Protocol::Tcp, "10.0.0.1", 80);
    // A flag sh has no name for still brings the parentheses, and -b.
    t.svc(k, "sh", SchedFlags::SCHED3, None, None, None, false);
    assert_eq!(t.list(numeric()), text(EDGE_LN));
    assert_eq!(t.save(true), text(EDGE_SAVE));
    assert_eq!(ntop6("::".parse().unwrap()), "::");
    assert_eq!(ntop6("::1".parse().unwrap()), "::1");
    assert_eq!(ntop6("1::".parse().unwrap()), "1::");
    assert_eq!(ntop6("::0.0.0.2".parse().unwrap()), "::2");
    // The kernel takes no v4-mapped real server, but glibc's form of one
    // still matters for a VIP.
    assert_eq!(ntop6("::ffff:10.0.0.1".parse().unwrap()), "::ffff:10.0.0.1");
}

/// A DPVS FULLNAT service with the extras DPVS lists.
fn dpvs_table() -> Table {
    let mut t = Table::new();
    let k = addr_key(Protocol::Tcp, "10.0.0.4", 80);
    t.svc(k, "wlc", 0, None, None, None, false);
    t.dest(k, "192.168.2.1", 80, FwdMethod::FullNat, 5)
        .set_conns(2, 1);
    t.notes.extras.insert(
        k,
        ServiceExtras {
            synproxy: true,
            proxy_protocol: ProxyProtocol::Disable,
        },
    );
    // The proxy protocol is the service's own setting.
    let mut cfg = t.t.get(&k).unwrap().config.clone();
    cfg.proxy_protocol = ProxyProtocol::V2;
    t.t.edit_service(cfg).unwrap();
    t
}

#[test]
fn fullnat_dests_and_extras_as_dpvs_prints_them() {
    let t = dpvs_table();
    // DPVS: printf("%s %s", ...) then " synproxy", " pp%s"; dests
    // "  -> %-28s %-7s %-6d %-10u %-10u" with fwd_name "FullNat".
    assert_eq!(
        t.list(numeric()),
        text(&[
            "IP Virtual Server version 1.2.1 (size=4096)",
            "Prot LocalAddress:Port Scheduler Flags",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
            "TCP  10.0.0.4:80 wlc synproxy ppv2",
            "  -> 192.168.2.1:80               FullNat 5      2          1         ",
        ])
    );
    // DPVS's fwd_switch is -b; rvs also saves the extras, which DPVS drops.
    assert_eq!(
        t.save(true),
        text(&[
            "-A -t 10.0.0.4:80 -s wlc -j enable --proxy-protocol v2",
            "-a -t 10.0.0.4:80 -r 192.168.2.1:80 -b -w 5",
        ])
    );
    let tun = t.list(view(ListView::TunInfo));
    assert!(tun.ends_with(
        "  -> 192.168.2.1:80               FullNat n/a           5      2          1         \n"
    ));
}

fn conn_rows() -> Vec<ConnRow> {
    let row =
        |proto, expires_secs, state, c: (&str, u16), v: (&str, u16), d: (&str, u16)| ConnRow {
            proto,
            expires_secs,
            state,
            caddr: ip(c.0),
            cport: c.1,
            vaddr: ip(v.0),
            vport: v.1,
            daddr: ip(d.0),
            dport: d.1,
            laddr: None,
            pe: None,
        };
    let sip = Some(("sip".to_string(), "abc123@host".to_string()));
    vec![
        row(
            "TCP",
            900,
            "ESTABLISHED",
            ("10.0.0.100", 40000),
            ("10.0.0.1", 80),
            ("192.168.1.10", 8080),
        ),
        row(
            "UDP",
            299,
            "UDP",
            ("10.0.0.101", 40001),
            ("10.0.0.2", 53),
            ("10.0.1.2", 53),
        ),
        row(
            "TCP",
            359,
            "NONE",
            ("10.0.0.100", 0),
            ("10.0.0.1", 443),
            ("192.168.1.12", 443),
        ),
        row(
            "IP",
            600,
            "ASSURED",
            ("10.0.0.100", 0),
            ("0.0.0.5", 0),
            ("10.0.0.20", 0),
        ),
        row(
            "TCP",
            59,
            "SYN_RECV",
            ("2001:db8::100", 50000),
            ("2001:db8::1", 80),
            ("2001:db8::9", 8080),
        ),
        ConnRow {
            pe: sip.clone(),
            ..row(
                "UDP",
                120,
                "UDP",
                ("10.0.0.101", 5060),
                ("10.0.0.9", 5060),
                ("10.0.0.21", 5060),
            )
        },
        ConnRow {
            pe: sip,
            ..row(
                "UDP",
                120,
                "NONE",
                ("10.0.0.101", 0),
                ("10.0.0.9", 0),
                ("10.0.0.21", 0),
            )
        },
        row(
            "SCTP",
            6001,
            "ESTABLISHED",
            ("10.0.0.102", 3356),
            ("10.0.0.3", 3868),
            ("10.0.0.23", 3868),
        ),
    ]
}

#[test]
fn connection_listing_is_ipvsadms() {
    let rows = conn_rows();
    assert_eq!(conns(&rows, &numeric(), &Fixed::new()), text(CONN_N));
    assert_eq!(
        conns(&rows, &view(ListView::PersistentConn), &Fixed::new()),
        text(CONN_PERSISTENT)
    );
    assert_eq!(
        conns(&rows, &ListOptions::default(), &Fixed::new()),
        text(CONN_NAMES)
    );
}

#[test]
fn fullnat_conns_show_the_local_address_before_the_destination() {
    let rows = [
        ConnRow {
            proto: "TCP",
            expires_secs: 7,
            state: "ESTABLISHED",
            caddr: ip("10.0.0.100"),
            cport: 40000,
            vaddr: ip("10.0.0.4"),
            vport: 80,
            daddr: ip("192.168.2.1"),
            dport: 80,
            laddr: Some((ip("192.168.2.254"), 1025)),
            pe: None,
        },
        ConnRow {
            proto: "UDP",
            expires_secs: 61,
            state: "UDP",
            caddr: ip("10.0.0.101"),
            cport: 5060,
            vaddr: ip("10.0.0.4"),
            vport: 5060,
            daddr: ip("192.168.2.1"),
            dport: 5060,
            laddr: Some((ip("192.168.2.254"), 1026)),
            pe: Some(("sip".into(), "call-1".into())),
        },
    ];
    // "%-3s %-6s %-11s %-18s %-18s" then DPVS's "%-18s %s" of laddr, daddr,
    // and with PE data list_conn's "%-16s %-18s %s".
    assert_eq!(
        conns(&rows, &numeric(), &Fixed::new()),
        text(&[
            "IPVS connection entries",
            "pro expire state       source             virtual            destination",
            "TCP 00:07  ESTABLISHED 10.0.0.100:40000   10.0.0.4:80        192.168.2.254:1025 192.168.2.1:80",
            "UDP 01:01  UDP         10.0.0.101:5060    10.0.0.4:5060      192.168.2.254:1026 192.168.2.1:5060",
        ])
    );
    let got = conns(&rows, &view(ListView::PersistentConn), &Fixed::new());
    assert!(got.ends_with(
        "UDP 01:01  UDP         10.0.0.101:5060    10.0.0.4:5060      192.168.2.254:1026 192.168.2.1:5060 sip                call-1\n"
    ));
}

#[test]
fn pe_data_is_read_back_as_one_word() {
    let mut row = conn_rows().remove(5);
    row.pe = Some(("sip".into(), "a b".into()));
    let got = conns(
        &[row.clone()],
        &view(ListView::PersistentConn),
        &Fixed::new(),
    );
    assert!(
        got.ends_with("10.0.0.21:5060   sip                a\n"),
        "{got}"
    );
    row.pe = Some(("sip".into(), String::new()));
    let got = conns(&[row], &view(ListView::PersistentConn), &Fixed::new());
    assert!(
        got.ends_with("10.0.0.9:5060      10.0.0.21:5060\n"),
        "{got}"
    );
}

#[test]
fn timeouts_and_daemons() {
    assert_eq!(
        timeouts(900, 120, 300),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    assert_eq!(daemons(&[]), "", "ipvsadm prints nothing when none runs");
    let backup = DaemonConfig {
        state: SyncState::Backup,
        mcast_interface: "eth1".into(),
        syncid: 5,
        sync_maxlen: Some(1472),
        mcast_group: Some(ip("224.0.0.81")),
        mcast_port: Some(8848),
        mcast_ttl: Some(1),
    };
    let master = DaemonConfig {
        state: SyncState::Master,
        mcast_interface: "eth0".into(),
        syncid: 0,
        sync_maxlen: None,
        mcast_group: None,
        mcast_port: None,
        mcast_ttl: None,
    };
    assert_eq!(
        daemons(&[backup, master]),
        "master sync daemon (mcast=eth0, syncid=0)\n\
         backup sync daemon (mcast=eth1, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );
}

#[test]
fn names_come_from_the_resolver_unless_numeric() {
    let mut t = Table::new();
    let k = addr_key(Protocol::Tcp, "127.0.0.1", 80);
    t.svc(k, "wlc", 0, None, None, None, false);
    t.dest(k, "127.0.0.1", 8080, FwdMethod::Masq, 1);
    t.dest(k, "10.0.0.2", 80, FwdMethod::Masq, 1);
    assert_eq!(
        t.save(false),
        "-A -t localhost:http -s wlc\n\
         -a -t localhost:http -r 10.0.0.2:http -m -w 1\n\
         -a -t localhost:http -r localhost:http-alt -m -w 1\n"
    );
    assert_eq!(
        t.save(true),
        "-A -t 127.0.0.1:80 -s wlc\n\
         -a -t 127.0.0.1:80 -r 10.0.0.2:80 -m -w 1\n\
         -a -t 127.0.0.1:80 -r 127.0.0.1:8080 -m -w 1\n"
    );
}

#[test]
fn a_long_host_name_is_cut_to_ipvsadms_buffer() {
    // 55 letters + ":http" is 60 bytes; snprintf(buf, 60) keeps 59.
    let long = "a".repeat(55);
    let names = Fixed::with_host("10.9.9.9", &long);
    let row = ConnRow {
        proto: "TCP",
        expires_secs: 60,
        state: "ESTABLISHED",
        caddr: "10.9.9.9".parse().unwrap(),
        cport: 80,
        vaddr: "10.0.0.1".parse().unwrap(),
        vport: 80,
        daddr: "10.0.0.2".parse().unwrap(),
        dport: 80,
        laddr: None,
        pe: None,
    };
    let got = conns(&[row], &ListOptions::default(), &names);
    let line = got.lines().nth(2).unwrap();
    assert!(
        line.starts_with(&format!("TCP 01:00  ESTABLISHED {long}:htt 10.0.0.1:http")),
        "{line}"
    );
}

#[test]
fn a_fwmark_templates_ports_and_ipv6_addresses_stay_numbers() {
    let names = Fixed::with_host("10.9.9.9", "client");
    assert_eq!(
        addrport("10.9.9.9".parse().unwrap(), 80, 0, Some(&names)),
        "client:80"
    );
    assert_eq!(
        addrport("::1".parse().unwrap(), 80, 6, Some(&names)),
        "[::1]:http",
        "Fixed names no IPv6 address, as gethostbyaddr with ipvsadm's length cannot"
    );
    assert_eq!(
        addrport("10.9.9.9".parse().unwrap(), 80, 17, Some(&names)),
        "client:80",
        "http is TCP only"
    );
}

#[test]
fn a_mask_of_the_other_family_reads_as_libipvs_would() {
    assert_eq!(netmask_text(AF_INET, Netmask::V4(u32::MAX)), None);
    assert_eq!(
        netmask_text(AF_INET, Netmask::V4(0xffff_fff0)).as_deref(),
        Some("255.255.255.240")
    );
    assert_eq!(netmask_text(AF_INET6, Netmask::V6(128)), None);
    assert_eq!(
        netmask_text(AF_INET6, Netmask::V6(48)).as_deref(),
        Some("48")
    );
    assert_eq!(
        netmask_text(AF_INET, Netmask::V6(64)).as_deref(),
        Some("64.0.0.0")
    );
    assert_eq!(
        netmask_text(AF_INET6, Netmask::V4(u32::MAX)).as_deref(),
        Some("-1")
    );
}
