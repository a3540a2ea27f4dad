//! Expected values come from ipvsadm 1.31's ipvsadm.c and libpopt (and
//! DPVS's tools/ipvsadm for its additions), never from this parser.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::grammar::*;
use crate::ipvs::{
    DestConfig, FwdMethod, Netmask, Protocol, SchedFlags, ServiceConfig, ServiceKey,
};

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

fn ok(line: &str) -> Command {
    match parse(&words(line)) {
        Ok(c) => c,
        Err(e) => panic!("{line:?} failed: {e:?}"),
    }
}

fn ok_args(args: &[&str]) -> Command {
    let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    parse(&v).unwrap()
}

fn err(line: &str) -> (String, i32) {
    match parse(&words(line)) {
        Ok(c) => panic!("{line:?} parsed: {c:?}"),
        Err(e) => (e.message, e.exit_code),
    }
}

fn fail2(line: &str, msg: &str) {
    assert_eq!(err(line), (msg.to_string(), 2), "{line}");
}

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse::<Ipv4Addr>().unwrap())
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

fn tcp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: v4(addr),
        port,
    }
}

fn udp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: v4(addr),
        port,
    }
}

fn svc(key: ServiceKey) -> ServiceConfig {
    ServiceConfig {
        key,
        scheduler: "wlc".into(),
        sched_flags: SchedFlags(0),
        persistent: None,
        netmask: if key.is_ipv6() {
            Netmask::V6(128)
        } else {
            Netmask::V4(0xffff_ffff)
        },
        one_packet: false,
        pe: None,
        proxy_protocol: Default::default(),
    }
}

fn dest(addr: IpAddr, port: u16, fwd: FwdMethod) -> DestConfig {
    DestConfig {
        addr,
        port,
        fwd,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
    }
}

fn add(cfg: ServiceConfig) -> Command {
    Command::AddService(cfg, ServiceExtras::default())
}

const TRY: &str = "Try `ipvsadm -h' or 'ipvsadm --help' for more information.";

// ---- commands --------------------------------------------------------

#[test]
fn no_arguments_is_a_plain_non_numeric_listing() {
    assert_eq!(parse(&[]), Ok(Command::List(ListOptions::default())));
}

#[test]
fn add_service_defaults() {
    // DEF_SCHED wlc, netmask 0xffffffff, not persistent.
    assert_eq!(ok("-A -t 10.0.0.1:80"), add(svc(tcp("10.0.0.1", 80))));
    assert_eq!(
        ok("--add-service --tcp-service 10.0.0.1:80"),
        add(svc(tcp("10.0.0.1", 80)))
    );
}

#[test]
fn add_service_all_options() {
    let mut c = svc(udp("10.0.0.2", 53));
    c.scheduler = "sh".into();
    c.sched_flags = SchedFlags(0x08 | 0x10);
    c.persistent = Some(600);
    c.netmask = Netmask::V4(0xffff_ff00);
    c.one_packet = true;
    c.pe = Some("sip".into());
    assert_eq!(
        ok("-A -u 10.0.0.2:53 -b sh-fallback,sh-port -s sh -p 600 -M 255.255.255.0 -o --pe sip"),
        add(c)
    );
}

#[test]
fn edit_service_is_a_complete_config() {
    // -E without -p/-s: not persistent, wlc.
    assert_eq!(
        ok("-E -t 10.0.0.1:80"),
        Command::EditService(svc(tcp("10.0.0.1", 80)), ServiceExtras::default())
    );
}

#[test]
fn delete_clear_restore_save() {
    assert_eq!(
        ok("-D -t 10.0.0.1:80"),
        Command::DeleteService(tcp("10.0.0.1", 80))
    );
    assert_eq!(
        ok("--delete-service -f 5"),
        Command::DeleteService(ServiceKey::Fwmark {
            mark: 5,
            ipv6: false
        })
    );
    assert_eq!(ok("-C"), Command::Clear);
    assert_eq!(ok("--clear"), Command::Clear);
    assert_eq!(ok("-R"), Command::Restore);
    assert_eq!(ok("--restore"), Command::Restore);
    assert_eq!(ok("-S"), Command::Save { numeric: false });
    assert_eq!(ok("-S -n"), Command::Save { numeric: true });
    assert_eq!(ok("-Sn"), Command::Save { numeric: true });
    assert_eq!(ok("--save --numeric"), Command::Save { numeric: true });
}

#[test]
fn add_dest_defaults_are_dr_weight_1_and_the_service_port() {
    // DROUTE by default, weight 1; DR dests take the service port.
    assert_eq!(
        ok("-a -t 10.0.0.1:80 -r 192.168.1.10:8080"),
        Command::AddDest(
            tcp("10.0.0.1", 80),
            dest(v4("192.168.1.10"), 80, FwdMethod::DirectRoute),
            None
        )
    );
    // No port: dport = vport.
    assert_eq!(
        ok("-a -t 10.0.0.1:80 -r 192.168.1.10 -m"),
        Command::AddDest(
            tcp("10.0.0.1", 80),
            dest(v4("192.168.1.10"), 80, FwdMethod::Masq),
            None
        )
    );
}

#[test]
fn add_dest_forwarding_methods() {
    let k = tcp("10.0.0.1", 80);
    assert_eq!(
        ok("-a -t 10.0.0.1:80 -r 192.168.1.10:8080 -m -w 3"),
        Command::AddDest(
            k,
            DestConfig {
                weight: 3,
                ..dest(v4("192.168.1.10"), 8080, FwdMethod::Masq)
            },
            None
        )
    );
    // TUN is forced to the service port too, and gets an ipip tunnel.
    assert_eq!(
        ok("-a -t 10.0.0.1:80 -r 192.168.1.10:8080 --ipip"),
        Command::AddDest(
            k,
            dest(v4("192.168.1.10"), 80, FwdMethod::Tunnel),
            Some(Tunnel::Ipip)
        )
    );
    assert_eq!(
        ok("-a -t 10.0.0.1:80 -r 192.168.1.10:8080 --gatewaying -x 100 -y 50"),
        Command::AddDest(
            k,
            DestConfig {
                u_threshold: 100,
                l_threshold: 50,
                ..dest(v4("192.168.1.10"), 80, FwdMethod::DirectRoute)
            },
            None
        )
    );
    assert_eq!(
        ok("-a -t 10.0.0.1:80 -r 192.168.1.10:8080 --masquerading --weight 0"),
        Command::AddDest(
            k,
            DestConfig {
                weight: 0,
                ..dest(v4("192.168.1.10"), 8080, FwdMethod::Masq)
            },
            None
        )
    );
}

#[test]
fn dr_on_a_fwmark_service_keeps_its_port() {
    assert_eq!(
        ok("-a -f 5 -r 10.0.0.2:8080"),
        Command::AddDest(
            ServiceKey::Fwmark {
                mark: 5,
                ipv6: false
            },
            dest(v4("10.0.0.2"), 8080, FwdMethod::DirectRoute),
            None
        )
    );
    // No port on a fwmark service: the service's port, 0.
    assert_eq!(
        ok("-a -f 5 -r 10.0.0.2 -g"),
        Command::AddDest(
            ServiceKey::Fwmark {
                mark: 5,
                ipv6: false
            },
            dest(v4("10.0.0.2"), 0, FwdMethod::DirectRoute),
            None
        )
    );
}

#[test]
fn real_server_before_the_service_copies_port_zero() {
    // -r copies ce->svc.port as it is when -r is read.
    assert_eq!(
        ok("-a -r 192.168.1.10 -t 10.0.0.1:80 -m"),
        Command::AddDest(
            tcp("10.0.0.1", 80),
            dest(v4("192.168.1.10"), 0, FwdMethod::Masq),
            None
        )
    );
    // ...and the protocol: no service name resolves before -t.
    fail2(
        "-a -r 192.168.1.10:http -t 10.0.0.1:80 -m",
        "illegal real server address[:port] specified",
    );
    assert_eq!(
        ok("-a -t 10.0.0.1:80 -r 192.168.1.10:http -m"),
        Command::AddDest(
            tcp("10.0.0.1", 80),
            dest(v4("192.168.1.10"), 80, FwdMethod::Masq),
            None
        )
    );
}

#[test]
fn edit_and_delete_dest() {
    assert_eq!(
        ok("-e -t 10.0.0.1:80 -r 192.168.1.10:8080 -m -w 5"),
        Command::EditDest(
            tcp("10.0.0.1", 80),
            DestConfig {
                weight: 5,
                ..dest(v4("192.168.1.10"), 8080, FwdMethod::Masq)
            },
            None
        )
    );
    // -e without -m is a DR dest again (a complete dest is sent).
    assert_eq!(
        ok("--edit-server -t 10.0.0.1:80 -r 192.168.1.10 -w 5"),
        Command::EditDest(
            tcp("10.0.0.1", 80),
            DestConfig {
                weight: 5,
                ..dest(v4("192.168.1.10"), 80, FwdMethod::DirectRoute)
            },
            None
        )
    );
    // -d does not force the port: forwarding options are illegal there.
    assert_eq!(
        ok("-d -t 10.0.0.1:80 -r 192.168.1.10:8080"),
        Command::DeleteDest(tcp("10.0.0.1", 80), v4("192.168.1.10"), 8080)
    );
    assert_eq!(
        ok("--delete-server -t 10.0.0.1:80 -r 192.168.1.10"),
        Command::DeleteDest(tcp("10.0.0.1", 80), v4("192.168.1.10"), 80)
    );
}

fn list(f: impl FnOnce(&mut ListOptions)) -> Command {
    let mut l = ListOptions::default();
    f(&mut l);
    Command::List(l)
}

#[test]
fn list_forms() {
    assert_eq!(ok("-L"), list(|_| {}));
    assert_eq!(ok("-l"), list(|_| {}));
    assert_eq!(ok("--list"), list(|_| {}));
    assert_eq!(ok("-Ln"), list(|l| l.numeric = true));
    assert_eq!(ok("-L -n"), list(|l| l.numeric = true));
    assert_eq!(
        ok("-Lnc"),
        list(|l| {
            l.numeric = true;
            l.connections = true
        })
    );
    assert_eq!(
        ok("-Ln --stats"),
        list(|l| {
            l.numeric = true;
            l.view = ListView::Stats
        })
    );
    assert_eq!(ok("-L --rate"), list(|l| l.view = ListView::Rate));
    assert_eq!(
        ok("-L --thresholds"),
        list(|l| l.view = ListView::Thresholds)
    );
    assert_eq!(
        ok("-L --persistent-conn"),
        list(|l| l.view = ListView::PersistentConn)
    );
    assert_eq!(ok("-L --tun-info"), list(|l| l.view = ListView::TunInfo));
    assert_eq!(ok("-L --timeout"), list(|l| l.timeout = true));
    assert_eq!(ok("-L --daemon"), list(|l| l.daemon = true));
    assert_eq!(ok("-L --exact"), list(|l| l.exact = true));
    assert_eq!(ok("-LX"), list(|l| l.exact = true));
    assert_eq!(ok("-L --nosort"), list(|l| l.nosort = true));
    // --sort is a no-op, in no table, and may repeat.
    assert_eq!(ok("-L --sort --sort"), list(|_| {}));
    assert_eq!(ok("-L --syncid 3"), list(|_| {}));
    assert_eq!(
        ok("-L -t 10.0.0.1:80 -n"),
        list(|l| {
            l.service = Some(tcp("10.0.0.1", 80));
            l.numeric = true
        })
    );
    assert_eq!(
        ok("-Lc --persistent-conn"),
        list(|l| {
            l.connections = true;
            l.view = ListView::PersistentConn
        })
    );
}

#[test]
fn list_view_precedence() {
    // print_title: stats > rate > thresholds > persistent-conn > tun-info.
    assert_eq!(
        ok("-L --tun-info --persistent-conn --thresholds --rate --stats"),
        list(|l| l.view = ListView::Stats)
    );
    assert_eq!(
        ok("-L --tun-info --rate --thresholds"),
        list(|l| l.view = ListView::Rate)
    );
    assert_eq!(
        ok("-L --tun-info --persistent-conn"),
        list(|l| l.view = ListView::PersistentConn)
    );
}

#[test]
fn zero_and_set() {
    assert_eq!(ok("-Z"), Command::Zero(None));
    assert_eq!(
        ok("--zero -u 10.0.0.2:53"),
        Command::Zero(Some(udp("10.0.0.2", 53)))
    );
    assert_eq!(
        ok("--set 900 120 300"),
        Command::SetTimeouts {
            tcp: 900,
            tcpfin: 120,
            udp: 300
        }
    );
    // 0 = unchanged; the range is 0..MAX_TIMEOUT (86400*31).
    assert_eq!(
        ok("--set 0 0 2678400"),
        Command::SetTimeouts {
            tcp: 0,
            tcpfin: 0,
            udp: 2678400
        }
    );
    // popt collects non-option words wherever they stand.
    assert_eq!(
        ok("900 --set 120 300"),
        Command::SetTimeouts {
            tcp: 900,
            tcpfin: 120,
            udp: 300
        }
    );
}

#[test]
fn daemons() {
    assert_eq!(
        ok("--start-daemon master"),
        Command::StartDaemon(DaemonConfig {
            state: SyncState::Master,
            mcast_interface: "eth0".into(),
            syncid: 0,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
        })
    );
    assert_eq!(
        ok(
            "--start-daemon=backup --mcast-interface eth1 --syncid 7 --sync-maxlen 1472 \
            --mcast-group 224.0.0.81 --mcast-port 8848 --mcast-ttl 1"
        ),
        Command::StartDaemon(DaemonConfig {
            state: SyncState::Backup,
            mcast_interface: "eth1".into(),
            syncid: 7,
            sync_maxlen: Some(1472),
            mcast_group: Some(v4("224.0.0.81")),
            mcast_port: Some(8848),
            mcast_ttl: Some(1),
        })
    );
    assert_eq!(
        ok("--start-daemon master --mcast-group ff02::81"),
        Command::StartDaemon(DaemonConfig {
            state: SyncState::Master,
            mcast_interface: "eth0".into(),
            syncid: 0,
            sync_maxlen: None,
            mcast_group: Some(v6("ff02::81")),
            mcast_port: None,
            mcast_ttl: None,
        })
    );
    assert_eq!(
        ok("--stop-daemon backup --syncid 5"),
        Command::StopDaemon(DaemonConfig {
            state: SyncState::Backup,
            mcast_interface: String::new(),
            syncid: 5,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
        })
    );
    fail2(
        "--start-daemon primary",
        "illegal start-daemon parameter specified",
    );
    fail2("--stop-daemon primary", "illegal start_daemon specified");
    fail2(
        "--stop-daemon master --mcast-port 1",
        "Illegal 'mcast-port' option with the 'stop-daemon' command",
    );
    fail2(
        "--start-daemon master --syncid 256",
        "illegal syncid specified",
    );
    fail2(
        "--start-daemon master --mcast-group 10.0.0.1",
        "invalid IPv4 mcast-group `10.0.0.1'",
    );
    fail2(
        "--start-daemon master --mcast-group 2001:db8::1",
        "invalid IPv6 mcast-group `2001:db8::1'",
    );
    fail2(
        "--start-daemon master --mcast-port 0",
        "illegal mcast-port specified",
    );
    fail2(
        "--start-daemon master --mcast-ttl 256",
        "illegal mcast-ttl specified",
    );
    fail2(
        "--start-daemon master --sync-maxlen 65508",
        "illegal sync-maxlen specified",
    );
    // A missing argument to the first option is popt's error: "Try ...".
    assert_eq!(err("--start-daemon"), (TRY.to_string(), 255));
}

#[test]
fn help_and_version_win_whatever_follows() {
    assert_eq!(ok("-h"), Command::Help);
    assert_eq!(ok("--help"), Command::Help);
    assert_eq!(ok("-h --bogus -A"), Command::Help);
    assert_eq!(ok("-v"), Command::Version);
    assert_eq!(ok("--version x y"), Command::Version);
    // Only as the first option; later they are "invalid option".
    fail2("-L -h", "invalid option `-h'");
    fail2("-Lv", "invalid option `-Lv'");
}

// ---- popt semantics --------------------------------------------------

#[test]
fn the_command_must_come_first() {
    assert_eq!(err("-n -L"), (TRY.to_string(), 255));
    assert_eq!(err("-t 10.0.0.1:80 -A"), (TRY.to_string(), 255));
    assert_eq!(err("foo"), (TRY.to_string(), 255));
    assert_eq!(err("--"), (TRY.to_string(), 255));
    assert_eq!(err("--bogus -L"), (TRY.to_string(), 255));
    // Only a leftover before it: the command is still the first option.
    fail2("foo -L", "unexpected argument foo");
}

#[test]
fn try_line_names_the_program() {
    let e = parse_as("/sbin/ipvsadm", &words("-n")).unwrap_err();
    assert_eq!(
        e.message,
        "Try `/sbin/ipvsadm -h' or '/sbin/ipvsadm --help' for more information."
    );
}

#[test]
fn a_second_command_is_an_invalid_option() {
    // set_command's "multiple commands specified" is unreachable: commands
    // are only looked at for the first option.
    fail2("-L -A", "invalid option `-A'");
    fail2("-Ln -S", "invalid option `-S'");
    fail2("-A -t 10.0.0.1:80 -E", "invalid option `-E'");
    fail2("-LZ", "invalid option `-LZ'");
    fail2("-C --clear", "invalid option `--clear'");
    // poptBadOption names the last word read: here --start-daemon's argument.
    fail2("-L --start-daemon master", "invalid option `master'");
}

#[test]
fn popt_errors_exit_255() {
    let e = parse(&words("-L --bogus")).unwrap_err();
    assert_eq!(
        (e.message.as_str(), e.exit_code),
        ("--bogus: unknown option", 255)
    );
    assert_eq!(err("-Lq"), ("-Lq: unknown option".into(), 255));
    assert_eq!(err("-A -t"), ("-t: missing argument".into(), 255));
    assert_eq!(
        err("-A --scheduler"),
        ("--scheduler: missing argument".into(), 255)
    );
    assert_eq!(
        err("-L --numeric=1"),
        ("--numeric=1: option does not take an argument".into(), 255)
    );
    assert_eq!(
        err("-L -n=1"),
        ("-n=1: option does not take an argument".into(), 255)
    );
    // No unique-prefix abbreviations in popt, and no single-dash long names.
    assert_eq!(err("-L --num"), ("--num: unknown option".into(), 255));
    // "-numeric" is the cluster -n -u "meric".
    fail2(
        "-L -numeric",
        "illegal virtual server address[:port] specified",
    );
    // syncid's val is 'I' but it has no short name.
    assert_eq!(err("-L -I 3"), ("-I: unknown option".into(), 255));
}

#[test]
fn clustered_options_and_attached_values() {
    let expected = add(svc(tcp("10.0.0.1", 80)));
    assert_eq!(ok("-At 10.0.0.1:80"), expected);
    assert_eq!(ok("-At10.0.0.1:80"), expected);
    assert_eq!(ok("-A -t10.0.0.1:80"), expected);
    assert_eq!(ok("-A -t=10.0.0.1:80"), expected);
    assert_eq!(ok("-A --tcp-service=10.0.0.1:80"), expected);
    let w5 = Command::AddDest(
        tcp("10.0.0.1", 80),
        DestConfig {
            weight: 5,
            ..dest(v4("10.0.0.2"), 8080, FwdMethod::Masq)
        },
        None,
    );
    assert_eq!(ok("-a -t 10.0.0.1:80 -r 10.0.0.2:8080 -mw 5"), w5);
    assert_eq!(ok("-a -t 10.0.0.1:80 -r 10.0.0.2:8080 -mw5"), w5);
    assert_eq!(ok("-a -t 10.0.0.1:80 -r 10.0.0.2:8080 -m -w=5"), w5);
    assert_eq!(ok("-a -t 10.0.0.1:80 -r 10.0.0.2:8080 -m --weight=5"), w5);
    // A required argument is taken even when it starts with '-'.
    fail2(
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -w -1",
        "illegal weight specified",
    );
}

#[test]
fn persistent_takes_an_optional_argument() {
    let p = |t| {
        let mut c = svc(tcp("10.0.0.1", 80));
        c.persistent = Some(t);
        add(c)
    };
    // Without a value: IPVS_SVC_PERSISTENT_TIMEOUT, 6*60.
    assert_eq!(ok("-A -t 10.0.0.1:80 -p"), p(360));
    assert_eq!(ok("-A -p -t 10.0.0.1:80"), p(360));
    assert_eq!(ok("-A -t 10.0.0.1:80 --persistent"), p(360));
    assert_eq!(ok("-A -t 10.0.0.1:80 -p 600"), p(600));
    assert_eq!(ok("-A -t 10.0.0.1:80 -p600"), p(600));
    assert_eq!(ok("-A -t 10.0.0.1:80 -p=600"), p(600));
    assert_eq!(ok("-A -t 10.0.0.1:80 --persistent=600"), p(600));
    assert_eq!(ok("-A -t 10.0.0.1:80 -p 2678400"), p(2678400));
    // The next word is consumed unless it starts with '-'.
    fail2(
        "-A -t 10.0.0.1:80 -p rr",
        "invalid timeout value `rr' specified",
    );
    fail2(
        "-A -t 10.0.0.1:80 -p 0",
        "invalid timeout value `0' specified",
    );
    fail2(
        "-A -t 10.0.0.1:80 -p 2678401",
        "invalid timeout value `2678401' specified",
    );
    let mut c = svc(tcp("10.0.0.1", 80));
    c.persistent = Some(360);
    c.scheduler = "rr".into();
    assert_eq!(ok("-A -t 10.0.0.1:80 -p -s rr"), add(c));
    // "-p -1": "-1" is then read as options, and '1' is none.
    assert_eq!(
        err("-A -t 10.0.0.1:80 -p -1"),
        ("-1: unknown option".into(), 255)
    );
}

#[test]
fn numbers_are_strtol_whole_strings() {
    let w = |n| {
        Command::AddDest(
            tcp("10.0.0.1", 80),
            DestConfig {
                weight: n,
                ..dest(v4("10.0.0.2"), 80, FwdMethod::DirectRoute)
            },
            None,
        )
    };
    assert_eq!(ok("-a -t 10.0.0.1:80 -r 10.0.0.2 -w +7"), w(7));
    assert_eq!(
        ok_args(&["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-w", " 7"]),
        w(7)
    );
    assert_eq!(ok("-a -t 10.0.0.1:80 -r 10.0.0.2 -w 65535"), w(65535));
    fail2(
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -w 65536",
        "illegal weight specified",
    );
    fail2(
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -w 5x",
        "illegal weight specified",
    );
    fail2(
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -w 0x10",
        "illegal weight specified",
    );
    // -x/-y are 0..INT_MAX.
    fail2(
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -x 2147483648",
        "illegal u_threshold specified",
    );
    fail2(
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -y -1",
        "illegal l_threshold specified",
    );
    assert!(parse(&words("-a -t 10.0.0.1:80 -r 10.0.0.2 -x 2147483647")).is_ok());
}

// ---- services and addresses -------------------------------------------

#[test]
fn service_address_forms() {
    let k = |line: &str| match ok(line) {
        Command::List(l) => l.service,
        c => panic!("{c:?}"),
    };
    assert_eq!(k("-L -t 10.0.0.1:80"), Some(tcp("10.0.0.1", 80)));
    // A missing port is 0.
    assert_eq!(k("-L -t 10.0.0.1"), Some(tcp("10.0.0.1", 0)));
    // inet_aton's short, octal and hex forms.
    assert_eq!(k("-L -t 10.1:80"), Some(tcp("10.0.0.1", 80)));
    assert_eq!(k("-L -t 012.0.0.1:80"), Some(tcp("10.0.0.1", 80)));
    assert_eq!(k("-L -t 0x0a.0.0.1:80"), Some(tcp("10.0.0.1", 80)));
    assert_eq!(k("-L -t 167772161:80"), Some(tcp("10.0.0.1", 80)));
    // Port names from the host's /etc/services (netbase), per protocol.
    assert_eq!(k("-L -t 10.0.0.1:http"), Some(tcp("10.0.0.1", 80)));
    assert_eq!(k("-L -t 10.0.0.1:https"), Some(tcp("10.0.0.1", 443)));
    assert_eq!(k("-L -t 10.0.0.1:ssh"), Some(tcp("10.0.0.1", 22)));
    assert_eq!(k("-L -t 10.0.0.1:ftp"), Some(tcp("10.0.0.1", 21)));
    assert_eq!(k("-L -t 10.0.0.1:smtp"), Some(tcp("10.0.0.1", 25)));
    assert_eq!(k("-L -u 10.0.0.1:domain"), Some(udp("10.0.0.1", 53)));
    // A host name, from the resolver (/etc/hosts), as gethostbyname.
    assert_eq!(k("-L -t localhost:http"), Some(tcp("127.0.0.1", 80)));
    assert_eq!(
        k("-L --sctp-service 10.0.0.3:3868"),
        Some(ServiceKey::Addr {
            proto: Protocol::Sctp,
            addr: v4("10.0.0.3"),
            port: 3868
        })
    );
    // IPv6: bracketed with a port, or bare without one.
    assert_eq!(
        k("-L -t [2001:db8::1]:443"),
        Some(ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: v6("2001:db8::1"),
            port: 443
        })
    );
    assert_eq!(
        k("-L -u 2001:db8::1"),
        Some(ServiceKey::Addr {
            proto: Protocol::Udp,
            addr: v6("2001:db8::1"),
            port: 0
        })
    );
    // parse_service re-splits a non-IPv6 bracket on ':' and loses the port.
    assert_eq!(k("-L -t [10.0.0.1]:80"), Some(tcp("10.0.0.1", 0)));
    assert_eq!(
        k("-L -f 9"),
        Some(ServiceKey::Fwmark {
            mark: 9,
            ipv6: false
        })
    );
    assert_eq!(
        k("-L -f 4294967295"),
        Some(ServiceKey::Fwmark {
            mark: u32::MAX,
            ipv6: false
        })
    );
}

#[test]
fn bad_service_addresses() {
    let bad = "illegal virtual server address[:port] specified";
    // All digits is never an address (str_is_digit).
    fail2("-L -t 80", bad);
    // A host name the resolver does not know (RFC 6761: .invalid never
    // resolves).
    fail2("-L -t nosuchhost.invalid:80", bad);
    fail2("-L -t [2001:db8::1]", bad);
    fail2("-L -t [2001:db8::1]80", bad);
    fail2("-L -t 10.0.0.1:", bad);
    fail2("-L -t 10.0.0.1:65536", bad);
    fail2("-L -t 10.0.0.1:nosuchservice", bad);
    // http is 80/tcp only in netbase.
    fail2("-L -u 10.0.0.1:http", bad);
    fail2("-L -t 10.0.0.256:80", bad);
    fail2("-L -t 08.0.0.1:80", bad);
    fail2(
        "-a -t 10.0.0.1:80 -r 80",
        "illegal real server address[:port] specified",
    );
    fail2("-L -f 0", "invalid fwmark value `0' specified");
    fail2("-L -f -3", "invalid fwmark value `-3' specified");
    fail2(
        "-L -f 4294967296",
        "invalid fwmark value `4294967296' specified",
    );
    fail2("-L -f 0x10", "invalid fwmark value `0x10' specified");
}

#[test]
fn netmasks() {
    let m = |line: &str| match ok(line) {
        Command::AddService(c, _) => c.netmask,
        c => panic!("{c:?}"),
    };
    assert_eq!(
        m("-A -t 10.0.0.1:80 -p -M 255.255.255.0"),
        Netmask::V4(0xffff_ff00)
    );
    // inet_aton reads a bare number as an address: 24 is 0.0.0.24.
    assert_eq!(m("-A -t 10.0.0.1:80 -p -M 24"), Netmask::V4(24));
    assert_eq!(m("-A -t [2001:db8::1]:80 -p -M 64"), Netmask::V6(64));
    // A prefix only once the IPv6 service is known; the IPv6 -t then resets it.
    assert_eq!(m("-A -M 64 -t [2001:db8::1]:80 -p"), Netmask::V6(128));
    // atoi: trailing junk ignored.
    assert_eq!(m("-A -t [2001:db8::1]:80 -p -M 48abc"), Netmask::V6(48));
    assert_eq!(m("-A -f 7 -6 -p -M 56"), Netmask::V6(56));
    assert_eq!(m("-A -f 7 -p -M 56 -6"), Netmask::V6(128));
    fail2(
        "-A -t 10.0.0.1:80 -p -M 255.255.255.256",
        "illegal virtual server persistent mask specified",
    );
    fail2(
        "-A -t 10.0.0.1:80 -p -M mask",
        "illegal virtual server persistent mask specified",
    );
    fail2(
        "-A -t [2001:db8::1]:80 -p -M 129",
        "illegal ipv6 netmask specified",
    );
    fail2(
        "-A -t [2001:db8::1]:80 -p -M 0",
        "illegal ipv6 netmask specified",
    );
    fail2(
        "-A -t [2001:db8::1]:80 -p -M -1",
        "illegal ipv6 netmask specified",
    );
    fail2(
        "-A -t [2001:db8::1]:80 -p -M ffff::",
        "illegal ipv6 netmask specified",
    );
}

#[test]
fn ipv6_flag_only_after_fwmark() {
    let mut c = svc(ServiceKey::Fwmark {
        mark: 7,
        ipv6: true,
    });
    c.scheduler = "lc".into();
    assert_eq!(ok("-A -f 7 -6 -s lc"), add(c));
    assert_eq!(
        ok("-D --fwmark-service 7 --ipv6"),
        Command::DeleteService(ServiceKey::Fwmark {
            mark: 7,
            ipv6: true
        })
    );
    // Not counted by set_option: may repeat.
    assert_eq!(
        ok("-D -f 7 -6 -6"),
        Command::DeleteService(ServiceKey::Fwmark {
            mark: 7,
            ipv6: true
        })
    );
    // fail() adds a newline to a message that already ends in one.
    fail2("-A -6 -f 7", "-6 used before -f\n");
    fail2("-A -t 10.0.0.1:80 -6", "-6 used before -f\n");
}

#[test]
fn address_families_of_dests() {
    fail2(
        "-a -t 10.0.0.1:80 -r [2001:db8::2]:80 -m",
        "Different address family is allowed only for tunneling servers",
    );
    fail2(
        "-a -f 5 -r 2001:db8::2",
        "Different address family is allowed only for tunneling servers",
    );
    assert_eq!(
        ok("-a -t 10.0.0.1:80 -r [2001:db8::2]:80 -i"),
        Command::AddDest(
            tcp("10.0.0.1", 80),
            dest(v6("2001:db8::2"), 80, FwdMethod::Tunnel),
            Some(Tunnel::Ipip)
        )
    );
    assert_eq!(
        ok("-a -f 5 -6 -r 2001:db8::2"),
        Command::AddDest(
            ServiceKey::Fwmark {
                mark: 5,
                ipv6: true
            },
            dest(v6("2001:db8::2"), 0, FwdMethod::DirectRoute),
            None
        )
    );
}

// ---- defaults and checks of process_options ----------------------------

#[test]
fn scheduler_defaults_and_names() {
    let s = |args: &[&str]| match ok_args(args) {
        Command::AddService(c, _) => c.scheduler,
        c => panic!("{c:?}"),
    };
    assert_eq!(s(&["-A", "-t", "10.0.0.1:80"]), "wlc");
    // strlen(sched_name) == 0 gets DEF_SCHED too.
    assert_eq!(s(&["-A", "-t", "10.0.0.1:80", "-s", ""]), "wlc");
    // Not validated by ipvsadm; cut to IP_VS_SCHEDNAME_MAXLEN - 1.
    assert_eq!(s(&["-A", "-t", "10.0.0.1:80", "-s", "nosuch"]), "nosuch");
    assert_eq!(
        s(&["-A", "-t", "10.0.0.1:80", "-s", "abcdefghijklmnopqrst"]),
        "abcdefghijklmno"
    );
    assert_eq!(s(&["-A", "-t", "10.0.0.1:80", "--scheduler=mh"]), "mh");
}

#[test]
fn sched_flags() {
    let f = |line: &str| match ok(line) {
        Command::AddService(c, _) => c.sched_flags,
        c => panic!("{c:?}"),
    };
    assert_eq!(
        f("-A -t 10.0.0.1:80 -s fo -b flag-1,flag-3"),
        SchedFlags(0x08 | 0x20)
    );
    assert_eq!(
        f("-A -t 10.0.0.1:80 --sched-flags flag-2"),
        SchedFlags(0x10)
    );
    assert_eq!(f("-A -t 10.0.0.1:80 -b sh-port -s sh"), SchedFlags(0x10));
    assert_eq!(
        f("-A -t 10.0.0.1:80 -s mh -b mh-fallback,mh-port"),
        SchedFlags(0x18)
    );
    assert_eq!(
        f("-A -t 10.0.0.1:80 -s sh -b ,sh-fallback,,"),
        SchedFlags(0x08)
    );
    assert_eq!(
        ok_args(&["-A", "-t", "10.0.0.1:80", "-b", ""]),
        add(svc(tcp("10.0.0.1", 80)))
    );
    // Checked after all options, against wlc when -s is absent.
    fail2(
        "-A -t 10.0.0.1:80 -b sh-port",
        "incompatible scheduler flag `sh-port'",
    );
    fail2(
        "-A -t 10.0.0.1:80 -s mh -b sh-fallback",
        "incompatible scheduler flag `sh-fallback'",
    );
    fail2(
        "-A -t 10.0.0.1:80 -s sh -b mh-port",
        "incompatible scheduler flag `mh-port'",
    );
    fail2(
        "-A -t 10.0.0.1:80 -b flag-1,bogus",
        "invalid scheduler flag `bogus'",
    );
    // After "unexpected argument", before the table check.
    fail2(
        "-A -t 10.0.0.1:80 -b bogus extra",
        "unexpected argument extra",
    );
    fail2("-L -b bogus", "invalid scheduler flag `bogus'");
    fail2(
        "-L -b flag-1",
        "Illegal 'sched-flags' option with the 'list' command",
    );
}

#[test]
fn zero_port_and_one_packet_checks() {
    fail2(
        "-A -t 10.0.0.1:0",
        "Zero port specified for non-persistent service",
    );
    fail2(
        "-A -t 10.0.0.1",
        "Zero port specified for non-persistent service",
    );
    fail2(
        "-E -u 10.0.0.1",
        "Zero port specified for non-persistent service",
    );
    let mut c = svc(tcp("10.0.0.1", 0));
    c.persistent = Some(360);
    assert_eq!(ok("-A -t 10.0.0.1 -p"), add(c));
    assert_eq!(
        ok("-A -f 3"),
        add(svc(ServiceKey::Fwmark {
            mark: 3,
            ipv6: false
        }))
    );
    fail2(
        "-A -t 10.0.0.1:80 -o",
        "One-Packet Scheduling is only for UDP virtual services",
    );
    fail2(
        "-A --sctp-service 10.0.0.1:80 --ops",
        "One-Packet Scheduling is only for UDP virtual services",
    );
    let mut c = svc(ServiceKey::Fwmark {
        mark: 3,
        ipv6: false,
    });
    c.one_packet = true;
    assert_eq!(ok("-A -f 3 -o"), add(c));
    // The zero-port check comes first.
    fail2(
        "-A -t 10.0.0.1 -o",
        "Zero port specified for non-persistent service",
    );
}

#[test]
fn repeated_options() {
    fail2(
        "-A -t 10.0.0.1:80 -u 10.0.0.1:53",
        "multiple 'service-address' options specified",
    );
    fail2(
        "-A -t 10.0.0.1:80 -f 3",
        "multiple 'service-address' options specified",
    );
    fail2(
        "-A -t 10.0.0.1:80 -s rr -s wrr",
        "multiple 'scheduler' options specified",
    );
    fail2(
        "-A -t 10.0.0.1:80 -p -p",
        "multiple 'persistent' options specified",
    );
    fail2(
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -g -m",
        "multiple 'forwarding-method' options specified",
    );
    fail2(
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -w 1 -w 2",
        "multiple 'weight' options specified",
    );
    // Counted before the value is looked at.
    fail2(
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -w 1 -w bad",
        "multiple 'weight' options specified",
    );
    fail2("-Lnn", "multiple 'numeric' options specified");
    fail2("-L --stats --stats", "multiple 'stats' options specified");
}

#[test]
fn illegal_and_missing_options() {
    fail2(
        "-A -t 10.0.0.1:80 -w 5",
        "Illegal 'weight' option with the 'add-service' command",
    );
    fail2("-C -n", "Illegal 'numeric' option with the 'flush' command");
    fail2(
        "-D -t 10.0.0.1:80 -s rr",
        "Illegal 'scheduler' option with the 'delete-service' command",
    );
    fail2(
        "-S -c",
        "Illegal 'connection' option with the 'save' command",
    );
    fail2(
        "-R -n",
        "Illegal 'numeric' option with the 'restore' command",
    );
    fail2(
        "--set 1 2 3 -n",
        "Illegal 'numeric' option with the 'set' command",
    );
    fail2("-Z -n", "Illegal 'numeric' option with the 'zero' command");
    fail2(
        "-d -t 10.0.0.1:80 -r 10.0.0.2 -m",
        "Illegal 'forwarding-method' option with the 'delete-server' command",
    );
    fail2(
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -p",
        "Illegal 'persistent' option with the 'add-server' command",
    );
    fail2(
        "-L -s rr",
        "Illegal 'scheduler' option with the 'list' command",
    );
    fail2("-L -o", "Illegal 'ops' option with the 'list' command");
    fail2(
        "--start-daemon master -n",
        "Illegal 'numeric' option with the 'start-daemon' command",
    );
    fail2(
        "-A",
        "You need to supply the 'service-address' option for the 'add-service' command",
    );
    fail2(
        "-E -s rr",
        "You need to supply the 'service-address' option for the 'edit-service' command",
    );
    fail2(
        "-D",
        "You need to supply the 'service-address' option for the 'delete-service' command",
    );
    fail2(
        "-a -t 10.0.0.1:80",
        "You need to supply the 'real-server' option for the 'add-server' command",
    );
    fail2(
        "-e -r 10.0.0.2",
        "You need to supply the 'service-address' option for the 'edit-server' command",
    );
    fail2(
        "-d -t 10.0.0.1:80",
        "You need to supply the 'real-server' option for the 'delete-server' command",
    );
    // Table order decides: numeric (column 0) before service (column 2).
    fail2(
        "-A -n",
        "Illegal 'numeric' option with the 'add-service' command",
    );
    // -6 and --sort are in no table.
    assert_eq!(ok("-C --sort"), Command::Clear);
}

#[test]
fn list_conflicts() {
    let c = "options conflicts in the list command";
    fail2("-L -c --stats", c);
    fail2("-L -c --rate", c);
    fail2("-L -c --thresholds", c);
    fail2("-L --timeout --stats", c);
    fail2("-L --daemon --rate", c);
    fail2("-L --timeout --persistent-conn", c);
    fail2("-L --daemon --persistent-conn", c);
    fail2(
        "-L -t 10.0.0.1:80 -c",
        "The option 'service-address' conflicts with the 'connection' option in the 'list' command",
    );
    fail2(
        "-L --daemon --timeout",
        "The option 'daemon' conflicts with the 'timeout' option in the 'list' command",
    );
    fail2(
        "-L -t 10.0.0.1:80 --daemon",
        "The option 'daemon' conflicts with the 'service-address' option in the 'list' command",
    );
    // A service with --stats is fine.
    assert_eq!(
        ok("-L -t 10.0.0.1:80 --stats"),
        list(|l| {
            l.service = Some(tcp("10.0.0.1", 80));
            l.view = ListView::Stats
        })
    );
}

#[test]
fn set_errors() {
    fail2("--set", "--set option requires 3 timeout values");
    fail2("--set 1 2", "--set option requires 3 timeout values");
    fail2("--set a b c", "invalid timeout value `a' specified");
    fail2(
        "--set 1 2 2678401",
        "invalid timeout value `2678401' specified",
    );
    // A word starting with '-' is an option cluster unless after "--".
    assert_eq!(err("--set 1 2 -5"), ("-5: unknown option".into(), 255));
    fail2("--set 1 2 -- -5", "invalid timeout value `-5' specified");
    fail2("--set 1 2 3 4", "unexpected argument 4");
    fail2("-L foo", "unexpected argument foo");
    fail2("-C -- -n", "unexpected argument -n");
}

#[test]
fn tunnels() {
    let k = udp("10.0.0.2", 53);
    assert_eq!(
        ok("-a -u 10.0.0.2:53 -r 10.0.1.2:53 -i --tun-type gue --tun-port 6080 --tun-remcsum"),
        Command::AddDest(
            k,
            dest(v4("10.0.1.2"), 53, FwdMethod::Tunnel),
            Some(Tunnel::Gue {
                port: 6080,
                csum: TunnelCsum::RemCsum
            })
        )
    );
    assert_eq!(
        ok("-a -u 10.0.0.2:53 -r 10.0.1.2:53 -i --tun-type gue --tun-port 6080"),
        Command::AddDest(
            k,
            dest(v4("10.0.1.2"), 53, FwdMethod::Tunnel),
            Some(Tunnel::Gue {
                port: 6080,
                csum: TunnelCsum::NoCsum
            })
        )
    );
    assert_eq!(
        ok("-a -u 10.0.0.2:53 -r 10.0.1.2:53 -i --tun-type gre --tun-csum"),
        Command::AddDest(
            k,
            dest(v4("10.0.1.2"), 53, FwdMethod::Tunnel),
            Some(Tunnel::Gre {
                csum: TunnelCsum::Csum
            })
        )
    );
    assert_eq!(
        ok("-a -u 10.0.0.2:53 -r 10.0.1.2:53 -i --tun-type ipip"),
        Command::AddDest(
            k,
            dest(v4("10.0.1.2"), 53, FwdMethod::Tunnel),
            Some(Tunnel::Ipip)
        )
    );
    let base = "-a -u 10.0.0.2:53 -r 10.0.1.2:53";
    let conflict = "Tunnel options conflict with forward method";
    fail2(&format!("{base} --tun-type gue --tun-port 1"), conflict);
    fail2(&format!("{base} -m --tun-csum"), conflict);
    fail2(&format!("{base} -g --tun-port 6080"), conflict);
    fail2(
        &format!("{base} -i --tun-type gue"),
        "You need to supply the 'tun-port' option for the 'gue' tunnel type",
    );
    fail2(
        &format!("{base} -i --tun-csum"),
        "Illegal 'tun-csum' option with the 'ipip' tunnel type",
    );
    fail2(
        &format!("{base} -i --tun-port 5"),
        "Illegal 'tun-port' option with the 'ipip' tunnel type",
    );
    fail2(
        &format!("{base} -i --tun-type gre --tun-remcsum"),
        "Illegal 'tun-remcsum' option with the 'gre' tunnel type",
    );
    fail2(
        &format!("{base} -i --tun-type gre --tun-port 5"),
        "Illegal 'tun-port' option with the 'gre' tunnel type",
    );
    fail2(
        &format!("{base} -i --tun-type gue --tun-port 5 --tun-remcsum --tun-csum"),
        "The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type",
    );
    fail2(
        &format!("{base} -i --tun-type vxlan"),
        "illegal tunnel type specified",
    );
    fail2(
        &format!("{base} -i --tun-type gue --tun-port 0"),
        "illegal tunnel port specified",
    );
    fail2(
        "-d -u 10.0.0.2:53 -r 10.0.1.2:53 --tun-type gue",
        "Illegal 'tun-type' option with the 'delete-server' command",
    );
}

// ---- DPVS additions ----------------------------------------------------

#[test]
fn dpvs_fullnat() {
    let fnat = Command::AddDest(
        tcp("10.0.0.1", 80),
        dest(v4("192.168.1.10"), 8080, FwdMethod::FullNat),
        None,
    );
    // FULLNAT maps ports, so the dest keeps its own.
    assert_eq!(ok("-a -t 10.0.0.1:80 -r 192.168.1.10:8080 -b"), fnat);
    assert_eq!(ok("-a -t 10.0.0.1:80 -r 192.168.1.10:8080 --fullnat"), fnat);
    assert_eq!(ok("-a -t 10.0.0.1:80 -r 192.168.1.10:8080 -bw 1"), fnat);
    // NAT64 through FULLNAT, as DPVS allows.
    assert_eq!(
        ok("-e -t 10.0.0.1:80 -r [2001:db8::2]:8080 -b"),
        Command::EditDest(
            tcp("10.0.0.1", 80),
            dest(v6("2001:db8::2"), 8080, FwdMethod::FullNat),
            None
        )
    );
    fail2(
        "-a -t 10.0.0.1:80 -r 192.168.1.10 -b -m",
        "multiple 'forwarding-method' options specified",
    );
    fail2(
        "-A -t 10.0.0.1:80 --fullnat",
        "Illegal 'forwarding-method' option with the 'add-service' command",
    );
    // -b on -a/-e takes no value; ipvsadm's long name still means sched-flags.
    assert_eq!(err("-a -t 10.0.0.1:80 -r 192.168.1.10 -b=x").1, 255);
    fail2(
        "-a -t 10.0.0.1:80 -r 192.168.1.10 --sched-flags flag-1",
        "Illegal 'sched-flags' option with the 'add-server' command",
    );
}

#[test]
fn dpvs_local_addresses() {
    assert_eq!(
        ok("-P -t 10.0.0.1:80 -z 192.168.100.1 -F dpdk0"),
        Command::AddLaddr {
            service: tcp("10.0.0.1", 80),
            laddr: v4("192.168.100.1"),
            ifname: "dpdk0".into()
        }
    );
    assert_eq!(
        ok("--del-laddr -t 10.0.0.1:80 --laddr 2001:db8::9 --ifname dpdk1"),
        Command::DelLaddr {
            service: tcp("10.0.0.1", 80),
            laddr: v6("2001:db8::9"),
            ifname: "dpdk1".into()
        }
    );
    assert_eq!(ok("-G"), Command::GetLaddr(None));
    assert_eq!(
        ok("--get-laddr -t 10.0.0.1:80"),
        Command::GetLaddr(Some(tcp("10.0.0.1", 80)))
    );
    fail2(
        "-P -t 10.0.0.1:80 -z 192.168.100.1",
        "You need to supply the 'ifname' option for the 'add-laddr' command",
    );
    fail2(
        "-Q -t 10.0.0.1:80 -F dpdk0",
        "You need to supply the 'local-address' option for the 'del-laddr' command",
    );
    fail2(
        "-P -z 192.168.100.1 -F dpdk0",
        "You need to supply the 'service-address' option for the 'add-laddr' command",
    );
    fail2(
        "-G -z 192.168.100.1",
        "Illegal 'local-address' option with the 'get-laddr' command",
    );
    fail2(
        "-P -t 10.0.0.1:80 -z nohost -F dpdk0",
        "illegal local address",
    );
    fail2(
        "-L -z 192.168.100.1",
        "Illegal 'local-address' option with the 'list' command",
    );
}

#[test]
fn dpvs_service_extras() {
    assert_eq!(
        ok("-A -t 10.0.0.1:80 -j enable --proxy-protocol v2"),
        Command::AddService(
            ServiceConfig {
                proxy_protocol: ProxyProtocol::V2,
                ..svc(tcp("10.0.0.1", 80))
            },
            ServiceExtras {
                synproxy: true,
                proxy_protocol: ProxyProtocol::V2
            }
        )
    );
    assert_eq!(
        ok("-E -t 10.0.0.1:80 --synproxy disable --proxy-protocol V1-Insecure"),
        Command::EditService(
            ServiceConfig {
                proxy_protocol: ProxyProtocol::V1Insecure,
                ..svc(tcp("10.0.0.1", 80))
            },
            ServiceExtras {
                synproxy: false,
                proxy_protocol: ProxyProtocol::V1Insecure
            }
        )
    );
    // DPVS's proxy_protocol_type: anything else is "disable".
    assert_eq!(
        ok("-A -t 10.0.0.1:80 --proxy-protocol whatever"),
        add(svc(tcp("10.0.0.1", 80)))
    );
    fail2(
        "-A -t 10.0.0.1:80 -j on",
        "synproxy switch must be enable or disable\n",
    );
    fail2(
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -j enable",
        "Illegal 'synproxy' option with the 'add-server' command",
    );
    fail2(
        "-L --proxy-protocol v1",
        "Illegal 'proxy-protocol' option with the 'list' command",
    );
}

// ---- -R input ----------------------------------------------------------

fn restore(line: &str) -> Command {
    match parse_restore_line(line) {
        Some(Ok(c)) => c,
        other => panic!("{line:?}: {other:?}"),
    }
}

#[test]
fn restore_the_reference_save_block() {
    // ipvs-reference.md §2, "Save (-S [-n])".
    let mut c = svc(tcp("10.0.0.1", 443));
    c.scheduler = "rr".into();
    c.persistent = Some(360);
    c.netmask = Netmask::V4(0xffff_ff00);
    assert_eq!(
        restore("-A -t 10.0.0.1:443 -s rr -p 360 -M 255.255.255.0"),
        add(c)
    );

    let mut c = svc(udp("10.0.0.2", 53));
    c.scheduler = "sh".into();
    c.one_packet = true;
    c.sched_flags = SchedFlags(0x08 | 0x10);
    assert_eq!(
        restore("-A -u 10.0.0.2:53 -s sh -o -b sh-fallback,sh-port"),
        add(c)
    );

    let mut c = svc(ServiceKey::Addr {
        proto: Protocol::Sctp,
        addr: v4("10.0.0.3"),
        port: 3868,
    });
    c.scheduler = "fo".into();
    c.sched_flags = SchedFlags(0x08 | 0x20);
    assert_eq!(
        restore("-A --sctp-service 10.0.0.3:3868 -s fo -b flag-1,flag-3"),
        add(c)
    );

    let mut c = svc(ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: v6("2001:db8::1"),
        port: 80,
    });
    c.scheduler = "mh".into();
    c.persistent = Some(300);
    c.netmask = Netmask::V6(64);
    c.sched_flags = SchedFlags(0x10);
    assert_eq!(
        restore("-A -t [2001:db8::1]:80 -s mh -p 300 -M 64 -b mh-port"),
        add(c)
    );

    let mut c = svc(ServiceKey::Fwmark {
        mark: 5,
        ipv6: false,
    });
    c.scheduler = "wrr".into();
    c.persistent = Some(600);
    c.pe = Some("sip".into());
    assert_eq!(restore("-A -f 5 -s wrr -p 600 --pe sip"), add(c));

    let mut c = svc(ServiceKey::Fwmark {
        mark: 7,
        ipv6: true,
    });
    c.scheduler = "lc".into();
    assert_eq!(restore("-A -f 7 -6 -s lc"), add(c));

    assert_eq!(
        restore("-a -t 10.0.0.1:80 -r 192.168.1.10:8080 -m -w 3"),
        Command::AddDest(
            tcp("10.0.0.1", 80),
            DestConfig {
                weight: 3,
                ..dest(v4("192.168.1.10"), 8080, FwdMethod::Masq)
            },
            None
        )
    );
    assert_eq!(
        restore(
            "-a -u 10.0.0.2:53 -r 10.0.1.2:53 -i -w 2 --tun-type gue --tun-port 6080 --tun-csum"
        ),
        Command::AddDest(
            udp("10.0.0.2", 53),
            DestConfig {
                weight: 2,
                ..dest(v4("10.0.1.2"), 53, FwdMethod::Tunnel)
            },
            Some(Tunnel::Gue {
                port: 6080,
                csum: TunnelCsum::Csum
            })
        )
    );
    assert_eq!(
        restore("-a -u 10.0.0.2:53 -r 10.0.1.3:53 -i -w 2 --tun-type gre --tun-nocsum"),
        Command::AddDest(
            udp("10.0.0.2", 53),
            DestConfig {
                weight: 2,
                ..dest(v4("10.0.1.3"), 53, FwdMethod::Tunnel)
            },
            Some(Tunnel::Gre {
                csum: TunnelCsum::NoCsum
            })
        )
    );
    // Without -n, names: "10.0.0.1:http".
    assert_eq!(
        restore("-A -t 10.0.0.1:http -s wlc"),
        add(svc(tcp("10.0.0.1", 80)))
    );
}

#[test]
fn restore_line_handling() {
    assert_eq!(parse_restore_line(""), None);
    assert_eq!(parse_restore_line("  \t \r\n"), None);
    assert_eq!(parse_restore_line("ipvsadm"), None);
    assert_eq!(restore("ipvsadm -C"), Command::Clear);
    assert_eq!(restore("  -C\t\r\n"), Command::Clear);
    // Every word "ipvsadm" goes, not only a leading one, so -s loses its
    // argument here and popt reports it.
    let e = parse_restore_line("-A -t 10.0.0.1:80 -s ipvsadm")
        .unwrap()
        .unwrap_err();
    assert_eq!(
        (e.message.as_str(), e.exit_code),
        ("-s: missing argument", 255)
    );
    // No comments: the first word is no option, so the "Try" line.
    let e = parse_restore_line("# saved rules").unwrap().unwrap_err();
    assert_eq!((e.message.as_str(), e.exit_code), (TRY, 255));
    let e = parse_restore_line("-C # clear").unwrap().unwrap_err();
    assert_eq!(
        (e.message.as_str(), e.exit_code),
        ("unexpected argument #", 2)
    );
    // -R inside -R: tryhelp_exit, after the table check.
    let e = parse_restore_line("-R").unwrap().unwrap_err();
    assert_eq!((e.message.as_str(), e.exit_code), (TRY, 255));
    let e = parse_restore_line("-R -n").unwrap().unwrap_err();
    assert_eq!(
        e.message,
        "Illegal 'numeric' option with the 'restore' command"
    );
    let e = parse_restore_line_as("rvsadm", "-n").unwrap().unwrap_err();
    assert_eq!(
        e.message,
        "Try `rvsadm -h' or 'rvsadm --help' for more information."
    );
}

// ---- no input panics ---------------------------------------------------

const VALID: &[&str] = &[
    "-A -t 10.0.0.1:443 -s rr -p 360 -M 255.255.255.0",
    "-A -u 10.0.0.2:53 -s sh -o -b sh-fallback,sh-port",
    "-A -t [2001:db8::1]:80 -s mh -p 300 -M 64 -b mh-port",
    "-A -f 7 -6 -s lc -p",
    "-a -u 10.0.0.2:53 -r 10.0.1.2:53 -i -w 2 --tun-type gue --tun-port 6080 --tun-csum",
    "-a -t 10.0.0.1:80 -r 192.168.1.10:8080 -b -w 3 -x 10 -y 5",
    "-e -t 10.0.0.1:80 -r 192.168.1.10:8080 -m",
    "-d -t 10.0.0.1:80 -r 192.168.1.10:8080",
    "-Lnc --persistent-conn --exact --nosort",
    "-L -t 10.0.0.1:80 --stats",
    "-Z -f 5",
    "--set 900 120 300",
    "--start-daemon master --mcast-interface eth1 --syncid 7 --mcast-group 224.0.0.81",
    "--stop-daemon backup --syncid 7",
    "-P -t 10.0.0.1:80 -z 192.168.100.1 -F dpdk0",
    "-G -t 10.0.0.1:80",
    "-A -t 10.0.0.1:80 -j enable --proxy-protocol v2-insecure",
    "-S -n",
];

#[test]
fn every_prefix_of_a_valid_line_parses_or_fails_cleanly() {
    for line in VALID {
        let w = words(line);
        assert!(parse(&w).is_ok(), "{line}");
        assert!(matches!(parse_restore_line(line), Some(Ok(_))), "{line}");
        for n in 0..=w.len() {
            if let Err(e) = parse(&w[..n]) {
                assert!(matches!(e.exit_code, 2 | 255), "{line} [{n}]: {e:?}");
                assert!(!e.message.is_empty());
            }
        }
        // Cut inside words too.
        for (i, _) in line.char_indices() {
            let _ = parse(&words(&line[..i]));
            let _ = parse_restore_line(&line[..i]);
        }
    }
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_token_sequences_never_panic() {
    let mut vocab: Vec<String> = VALID.iter().flat_map(|l| words(l)).collect();
    vocab.extend(
        [
            "-",
            "--",
            "---",
            "-=",
            "--=",
            "=",
            "",
            "-b",
            "-6",
            "-p",
            "-h",
            "-v",
            "-R",
            "-M",
            "-r",
            "[",
            "]",
            "[::1]",
            "[::1]:",
            "[1.2.3.4]:5",
            "::",
            ":",
            "0",
            "-0",
            "99999999999999999999",
            "0x",
            "0x0x",
            "1.2.3.4.5",
            "1..2",
            "é",
            "-é",
            "--é",
            "-tÿ",
            "\u{0}",
            "-\u{0}",
            "--tun-type=gre",
            "--tun-port",
            "--pe",
            "--set",
            "--start-daemon",
            "-At",
            "-Ln6",
            "-p=",
            "-w=",
            "--weight=",
            "-b,",
            ",",
            ",,",
            "flag-1,",
            "sh-port",
            "ipvsadm",
            "#",
            "4294967296",
            "-2147483649",
            "128",
            "129",
            "255.255.255.255",
            "ff02::1",
            "224.0.0.1",
        ]
        .map(str::to_string),
    );
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let len = rng.below(9);
        let mut args: Vec<String> = (0..len)
            .map(|_| vocab[rng.below(vocab.len())].clone())
            .collect();
        if rng.below(3) == 0 {
            // Glue two words into one, as in a short-option cluster.
            let a = vocab[rng.below(vocab.len())].clone();
            let b = vocab[rng.below(vocab.len())].clone();
            args.push(a + &b);
        }
        if let Err(e) = parse(&args) {
            assert!(matches!(e.exit_code, 2 | 255), "{args:?}: {e:?}");
        }
        let _ = parse_restore_line(&args.join(" "));
    }
}

#[test]
fn random_strings_never_panic() {
    let mut rng = Rng(42);
    let alphabet: Vec<char> = "-=:,.[]0123456789abtuf6pMrwxyLAnbcIzF \tx\u{0}éÿ"
        .chars()
        .collect();
    for _ in 0..1000 {
        let len = rng.below(40);
        let s: String = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        let _ = parse_restore_line(&s);
        let _ = parse(std::slice::from_ref(&s));
        let _ = parse(&["-A".to_string(), "-t".to_string(), s.clone()]);
        let _ = parse(&[
            "-A".to_string(),
            "-t".to_string(),
            "[::1]:80".to_string(),
            "-p".to_string(),
            "-M".to_string(),
            s.clone(),
        ]);
        let _ = parse(&[
            "-a".to_string(),
            "-t".to_string(),
            "1.2.3.4:80".to_string(),
            "-r".to_string(),
            s,
        ]);
    }
}
