//! ipvsadm 1.31's help and version text, so `rvsadm -h` reads as operators
//! know it; rvs's own additions follow in a section of their own.

/// `ipvsadm -v`: scripts that check the version see the ipvsadm they know.
pub const VERSION_LINE: &str = "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)";

/// `-h`: ipvsadm's usage text with `prog` as the program name, then the
/// options rvs adds (DPVS's local-address and FULLNAT options).
pub fn usage(prog: &str) -> String {
    let mut s = String::with_capacity(5000);
    s.push_str(VERSION_LINE);
    s.push('\n');
    s.push_str("Usage:\n");
    for line in [
        "-A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]",
        "-D virtual-service",
        "-C",
        "-R",
        "-S [-n]",
        "-a|e virtual-service -r server-address [options]",
        "-d virtual-service -r server-address",
        "-L|l [virtual-service] [options]",
        "-Z [virtual-service]",
        "--set tcp tcpfin udp",
        "--start-daemon {master|backup} [daemon-options]",
        "--stop-daemon {master|backup}",
        "-h",
    ] {
        s.push_str(&format!("  {prog} {line}\n"));
    }
    s.push('\n');
    s.push_str(COMMANDS);
    s.push_str(SERVICE);
    s.push_str(OPTIONS);
    s.push_str(DAEMON);
    s.push_str(RVS);
    s
}

const COMMANDS: &str = "Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values
  --start-daemon              start connection sync daemon
  --stop-daemon               stop connection sync daemon
  --help            -h        display this help message

";

const SERVICE: &str = "virtual-service:
  --tcp-service|-t  service-address   service-address is host[:port]
  --udp-service|-u  service-address   service-address is host[:port]
  --sctp-service    service-address   service-address is host[:port]
  --fwmark-service|-f fwmark          fwmark is an integer greater than zero

";

const OPTIONS: &str = "Options:
  --ipv6         -6                   fwmark entry uses IPv6
  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh,
                                      the default scheduler is wlc.
  --pe            engine              alternate persistence engine may be sip,
                                      not set by default.
  --persistent   -p [timeout]         persistent service
  --netmask      -M netmask           persistent granularity mask
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --tun-type      type                one of ipip|gue|gre,
                                      the default tunnel type is ipip.
  --tun-port      port                tunnel destination port
  --tun-nocsum                        tunnel encapsulation without checksum
  --tun-csum                          tunnel encapsulation with checksum
  --tun-remcsum                       tunnel encapsulation with remote checksum
  --weight       -w weight            capacity of real server
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --daemon                            output of daemon information
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --tun-info                          output of tunnel information
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --ops          -o                   one-packet scheduling
  --numeric      -n                   numeric output of addresses and ports
  --sched-flags  -b flags             scheduler flags (comma-separated)
";

const DAEMON: &str = "Daemon Options:
  --syncid sid                        syncid for connection sync (default=255)
  --sync-maxlen length                Max sync message length (default=1472)
  --mcast-interface interface         multicast interface for connection sync
  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)
  --mcast-port port                   UDP port (default=8848)
  --mcast-ttl ttl                     Multicast TTL (default=1)
";

const RVS: &str = "
rvs additions (DPVS spellings; not in ipvsadm 1.31):
  --fullnat      -b (with -a|-e)      full NAT: source and destination rewritten
  --add-laddr    -P                   add a FULLNAT local address to a service
  --del-laddr    -Q                   delete a FULLNAT local address
  --get-laddr    -G                   list a service's local addresses
  --laddr        -z address           the local address for -P|-Q
  --ifname       -F ifname            the port that owns the local address
  --synproxy                          SYN proxy (cookies) for a TCP FULLNAT|NAT service (disable: none)
  --proxy-protocol v1|v2              PROXY protocol header to FULLNAT|NAT TCP real servers (disable: none)
  --mark-add ADDR[/LEN] [tcp|udp|sctp|any] [PORT[:PORT]] MARK
                                      mark matching packets for -f services (stands in for iptables MARK)
  --mark-del ...                      delete a mark rule (same arguments)
  --mark-list                         list the mark rules
  --toa on|off virtual-service        FULLNAT: the client's address to the real server in a TOA option (kind 254)
  --socket       path                 rvsadm only: the management socket (default from RVS_SOCKET or /run/rvsd.sock)
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_keeps_ipvsadm_layout_and_names_the_program() {
        let u = usage("ipvsadm");
        assert!(u.starts_with("ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\nUsage:\n  ipvsadm -A|E virtual-service"));
        assert!(
            u.contains("  ipvsadm -h\n\nCommands:\nEither long or short options are allowed.\n")
        );
        assert!(u.contains(
            "  --help            -h        display this help message\n\nvirtual-service:\n"
        ));
        assert!(u.contains("fwmark is an integer greater than zero\n\nOptions:\n"));
        assert!(
            u.contains("scheduler flags (comma-separated)\nDaemon Options:\n"),
            "no blank line before Daemon Options in ipvsadm"
        );
        assert!(usage("rvsadm").contains("  rvsadm -S [-n]\n"));
    }
}
