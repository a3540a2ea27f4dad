//! Every option in rvsadm's table, walked: each one either changes what
//! rvsd keeps or prints (the listing, the saved rules, the timeouts), or
//! is refused with an error and changes nothing. A new option with no
//! case here fails the walk, so nothing can be accepted and dropped.
//!
//! The engine is the one rvsd runs; forwarding that an option changes is
//! proved by the end-to-end tests named in the cases.
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::engine::Engine;
use super::frame::Reply;
use super::grammar::option_table;
use crate::ipvs::proto::Timeouts;
use crate::ipvs::ServiceSet;

/// With one port, "p", as rvsd gives its engine the names of its ports.
fn engine() -> Engine {
    let mut e = Engine::new(
        1,
        Arc::new(ArcSwap::from_pointee(ServiceSet::default())),
        Arc::new(ArcSwap::from_pointee(Timeouts::default())),
    );
    e.laddr_view().set_ports(vec!["p".into()]);
    e
}

fn run(e: &mut Engine, line: &str, input: Option<&str>) -> Reply {
    let args: Vec<String> = line.split_whitespace().map(String::from).collect();
    e.execute("ipvsadm", &args, input)
}

/// Everything an engine keeps, as text.
fn state(e: &mut Engine) -> String {
    let mut s = String::new();
    for l in ["-Sn", "-Ln --timeout", "-Ln --thresholds", "-Ln --tun-info"] {
        s.push_str(&run(e, l, None).stdout);
    }
    s
}

enum Proof {
    /// After `setup` (and `traffic` bytes counted on every service),
    /// `with` (which uses the option) leaves a different output of
    /// `observe` (or, when `observe` is "", a different output of the line
    /// itself) than `without`; both succeed.
    Differs {
        setup: &'static [&'static str],
        traffic: u64,
        with: &'static str,
        without: &'static str,
        observe: &'static str,
        input: Option<&'static str>,
    },
    /// Refused: a non-zero status, a message, and nothing changed.
    Refused {
        setup: &'static [&'static str],
        line: &'static str,
    },
}

const FNAT: &[&str] = &[
    "-A -t 10.0.0.1:80 -s rr",
    "-a -t 10.0.0.1:80 -r 10.1.1.1:80 -b",
];
const SVC: &[&str] = &["-A -t 10.0.0.1:80 -s rr"];
const DEST: &[&str] = &[
    "-A -t 10.0.0.1:80 -s rr",
    "-a -t 10.0.0.1:80 -r 10.1.1.1:80 -m",
];
const TUN: &[&str] = &[
    "-A -t 10.0.0.1:80 -s rr",
    "-a -t 10.0.0.1:80 -r 10.1.1.1:80 -i",
];

const fn differs(
    setup: &'static [&'static str],
    with: &'static str,
    without: &'static str,
    observe: &'static str,
) -> Proof {
    Proof::Differs {
        setup,
        traffic: 0,
        with,
        without,
        observe,
        input: None,
    }
}

/// The proof of each long option.
fn proof(long: &str, short: char) -> Option<Proof> {
    use Proof::Refused;
    Some(match long {
        "add-service" => differs(&[], "-A -t 10.0.0.1:80", "-Ln", "-Sn"),
        "edit-service" => differs(SVC, "-E -t 10.0.0.1:80 -s wlc", "-Ln", "-Sn"),
        "delete-service" => differs(SVC, "-D -t 10.0.0.1:80", "-Ln", "-Sn"),
        "clear" => differs(DEST, "-C", "-Ln", "-Sn"),
        // `-L` and `-l`: the listing is the output.
        "list" if short == 'l' => differs(SVC, "-l -n", "-S -n", ""),
        "list" => differs(SVC, "-L -n", "-S -n", ""),
        "zero" => Proof::Differs {
            setup: SVC,
            traffic: 1500,
            with: "-Z",
            without: "-Ln",
            observe: "-Ln --stats",
            input: None,
        },
        "add-server" => differs(SVC, "-a -t 10.0.0.1:80 -r 10.1.1.1", "-Ln", "-Sn"),
        "edit-server" => differs(
            DEST,
            "-e -t 10.0.0.1:80 -r 10.1.1.1:80 -m -w 5",
            "-Ln",
            "-Sn",
        ),
        "delete-server" => differs(DEST, "-d -t 10.0.0.1:80 -r 10.1.1.1:80", "-Ln", "-Sn"),
        "set" => differs(&[], "--set 100 0 0", "-Ln", "-Ln --timeout"),
        "help" => differs(&[], "-h", "-v", ""),
        "version" => differs(&[], "-v", "-Ln", ""),
        "restore" => Proof::Differs {
            setup: &[],
            traffic: 0,
            with: "-R",
            without: "-Ln",
            observe: "-Sn",
            input: Some("-A -t 10.0.0.1:80 -s wlc\n"),
        },
        "save" => differs(SVC, "-S -n", "-L -n", ""),
        "start-daemon" => differs(&[], "--start-daemon master", "-Ln", "-L --daemon"),
        "stop-daemon" => differs(
            &["--start-daemon master"],
            "--stop-daemon master",
            "-Ln",
            "-L --daemon",
        ),
        "mcast-interface" => differs(
            &[],
            "--start-daemon master --mcast-interface eth1",
            "--start-daemon master",
            "-L --daemon",
        ),
        "syncid" => differs(
            &[],
            "--start-daemon master --syncid 7",
            "--start-daemon master",
            "-L --daemon",
        ),
        "mcast-group" => differs(
            &[],
            "--start-daemon master --mcast-group 224.0.0.82",
            "--start-daemon master",
            "-L --daemon",
        ),
        "mcast-port" => differs(
            &[],
            "--start-daemon master --mcast-port 8849",
            "--start-daemon master",
            "-L --daemon",
        ),
        "mcast-ttl" => differs(
            &[],
            "--start-daemon master --mcast-ttl 2",
            "--start-daemon master",
            "-L --daemon",
        ),
        "sync-maxlen" => differs(
            &[],
            "--start-daemon master --sync-maxlen 1400",
            "--start-daemon master",
            "-L --daemon",
        ),
        "tcp-service" => differs(&[], "-A -t 10.0.0.1:80", "-A -u 10.0.0.1:80", "-Sn"),
        "udp-service" => differs(&[], "-A -u 10.0.0.1:80", "-A -t 10.0.0.1:80", "-Sn"),
        "sctp-service" => differs(
            &[],
            "-A --sctp-service 10.0.0.1:80",
            "-A -t 10.0.0.1:80",
            "-Sn",
        ),
        "fwmark-service" => differs(&[], "-A -f 1", "-A -t 10.0.0.1:80", "-Sn"),
        "scheduler" => differs(&[], "-A -t 10.0.0.1:80 -s rr", "-A -t 10.0.0.1:80", "-Sn"),
        "persistent" => differs(&[], "-A -t 10.0.0.1:80 -p 60", "-A -t 10.0.0.1:80", "-Sn"),
        "netmask" => differs(
            &[],
            "-A -t 10.0.0.1:80 -p -M 255.255.255.0",
            "-A -t 10.0.0.1:80 -p",
            "-Sn",
        ),
        "real-server" => differs(SVC, "-a -t 10.0.0.1:80 -r 10.1.1.1", "-Ln", "-Sn"),
        "masquerading" => differs(
            SVC,
            "-a -t 10.0.0.1:80 -r 10.1.1.1 -m",
            "-a -t 10.0.0.1:80 -r 10.1.1.1",
            "-Sn",
        ),
        "ipip" => differs(
            SVC,
            "-a -t 10.0.0.1:80 -r 10.1.1.1 -i",
            "-a -t 10.0.0.1:80 -r 10.1.1.1",
            "-Sn",
        ),
        // -g is the default; against -m it is a different method.
        "gatewaying" => differs(
            SVC,
            "-a -t 10.0.0.1:80 -r 10.1.1.1 -g",
            "-a -t 10.0.0.1:80 -r 10.1.1.1 -m",
            "-Sn",
        ),
        "weight" => differs(
            SVC,
            "-a -t 10.0.0.1:80 -r 10.1.1.1 -w 7",
            "-a -t 10.0.0.1:80 -r 10.1.1.1",
            "-Sn",
        ),
        "u-threshold" => differs(
            SVC,
            "-a -t 10.0.0.1:80 -r 10.1.1.1 -x 100",
            "-a -t 10.0.0.1:80 -r 10.1.1.1",
            "-Ln --thresholds",
        ),
        "l-threshold" => differs(
            SVC,
            "-a -t 10.0.0.1:80 -r 10.1.1.1 -x 100 -y 50",
            "-a -t 10.0.0.1:80 -r 10.1.1.1 -x 100",
            "-Ln --thresholds",
        ),
        // 127.0.0.1 is `localhost` to the resolver, 80 `http` in netbase.
        "numeric" => differs(&["-A -t 127.0.0.1:80"], "-L -n", "-L", ""),
        "connection" => differs(SVC, "-L -n -c", "-L -n", ""),
        "timeout" => differs(&[], "-L --timeout", "-L", ""),
        "daemon" => differs(&[], "-L --daemon", "-L", ""),
        "stats" => differs(SVC, "-L -n --stats", "-L -n", ""),
        "rate" => differs(SVC, "-L -n --rate", "-L -n", ""),
        "thresholds" => differs(SVC, "-L -n --thresholds", "-L -n", ""),
        "persistent-conn" => differs(SVC, "-L -n -c --persistent-conn", "-L -n -c", ""),
        // Hash order (insertion here) against libipvs's sort.
        "nosort" => differs(
            &["-A -t 10.0.0.2:80", "-A -t 10.0.0.1:80"],
            "-L -n --nosort",
            "-L -n",
            "",
        ),
        "sort" => differs(
            &["-A -t 10.0.0.2:80", "-A -t 10.0.0.1:80"],
            "-L -n --sort",
            "-L -n --nosort",
            "",
        ),
        // Counters past 10^8 print whole instead of in K/M/G.
        "exact" => Proof::Differs {
            setup: SVC,
            traffic: 2_000_000_000,
            with: "-L -n --stats -X",
            without: "-L -n --stats",
            observe: "",
            input: None,
        },
        "ipv6" => differs(&[], "-A -f 1 -6", "-A -f 1", "-Sn"),
        "ops" => differs(&[], "-A -u 10.0.0.1:53 -o", "-A -u 10.0.0.1:53", "-Sn"),
        "pe" => differs(
            &[],
            "-A -u 10.0.0.1:5060 -p --pe sip",
            "-A -u 10.0.0.1:5060 -p",
            "-Sn",
        ),
        "sched-flags" => differs(
            &[],
            "-A -t 10.0.0.1:80 -s sh -b sh-port",
            "-A -t 10.0.0.1:80 -s sh",
            "-Sn",
        ),
        "tun-info" => differs(TUN, "-L -n --tun-info", "-L -n", ""),
        "tun-type" => differs(
            SVC,
            "-a -t 10.0.0.1:80 -r 10.1.1.1 -i --tun-type gre",
            "-a -t 10.0.0.1:80 -r 10.1.1.1 -i",
            "-Sn",
        ),
        "tun-port" => differs(
            SVC,
            "-a -t 10.0.0.1:80 -r 10.1.1.1 -i --tun-type gue --tun-port 6080",
            "-a -t 10.0.0.1:80 -r 10.1.1.1 -i --tun-type gue --tun-port 6081",
            "-Sn",
        ),
        "tun-nocsum" => differs(
            SVC,
            "-a -t 10.0.0.1:80 -r 10.1.1.1 -i --tun-type gre --tun-nocsum",
            "-a -t 10.0.0.1:80 -r 10.1.1.1 -i --tun-type gre --tun-csum",
            "-Sn",
        ),
        "tun-csum" => differs(
            SVC,
            "-a -t 10.0.0.1:80 -r 10.1.1.1 -i --tun-type gre --tun-csum",
            "-a -t 10.0.0.1:80 -r 10.1.1.1 -i --tun-type gre",
            "-Sn",
        ),
        "tun-remcsum" => differs(
            SVC,
            "-a -t 10.0.0.1:80 -r 10.1.1.1 -i --tun-type gue --tun-port 6080 --tun-remcsum",
            "-a -t 10.0.0.1:80 -r 10.1.1.1 -i --tun-type gue --tun-port 6080",
            "-Sn",
        ),
        "add-laddr" => differs(
            FNAT,
            "-P -t 10.0.0.1:80 -z 10.2.2.2 -F p",
            "-Ln",
            "-G -t 10.0.0.1:80",
        ),
        "del-laddr" => differs(
            &[
                "-A -t 10.0.0.1:80 -s rr",
                "-a -t 10.0.0.1:80 -r 10.1.1.1:80 -b",
                "-P -t 10.0.0.1:80 -z 10.2.2.2 -F p",
            ],
            "-Q -t 10.0.0.1:80 -z 10.2.2.2 -F p",
            "-Ln",
            "-G -t 10.0.0.1:80",
        ),
        "get-laddr" => differs(
            &[
                "-A -t 10.0.0.1:80 -s rr",
                "-a -t 10.0.0.1:80 -r 10.1.1.1:80 -b",
                "-P -t 10.0.0.1:80 -z 10.2.2.2 -F p",
            ],
            "-G -t 10.0.0.1:80",
            "-L -n",
            "",
        ),
        "fullnat" => differs(
            SVC,
            "-a -t 10.0.0.1:80 -r 10.1.1.1 --fullnat",
            "-a -t 10.0.0.1:80 -r 10.1.1.1 -m",
            "-Sn",
        ),
        "laddr" => differs(
            FNAT,
            "-P -t 10.0.0.1:80 -z 10.2.2.2 -F p",
            "-P -t 10.0.0.1:80 -z 10.2.2.3 -F p",
            "-G -t 10.0.0.1:80",
        ),
        "ifname" => Refused {
            setup: FNAT,
            line: "-P -t 10.0.0.1:80 -z 10.2.2.2 -F nosuchport",
        },
        // Forwarding: tests/synproxy.rs.
        "synproxy" => differs(
            FNAT,
            "-E -t 10.0.0.1:80 -s rr -j enable",
            "-E -t 10.0.0.1:80 -s rr -j disable",
            "-Sn",
        ),
        "proxy-protocol" => differs(
            FNAT,
            "-E -t 10.0.0.1:80 -s rr --proxy-protocol v2",
            "-E -t 10.0.0.1:80 -s rr",
            "-Sn",
        ),
        _ => return None,
    })
}

fn must(e: &mut Engine, line: &str, input: Option<&str>) -> Result<Reply, String> {
    let r = run(e, line, input);
    if r.code != 0 {
        return Err(format!("`{line}` failed: {}", r.stderr.trim_end()));
    }
    Ok(r)
}

/// The lines a proof runs, to check that it uses the option.
fn lines(p: &Proof) -> Vec<&'static str> {
    match p {
        Proof::Differs { with, .. } => vec![with],
        Proof::Refused { line, .. } => vec![line],
    }
}

fn check(long: &str, short: char, p: Proof) -> Result<(), String> {
    // The case's line uses the option: by its short letter where it has
    // one (alone or clustered, `-Ln`), else by its long name.
    let used = lines(&p).join(" ");
    let uses = used.split_whitespace().any(|w| {
        if short == '\0' {
            w == format!("--{long}")
        } else {
            w.starts_with('-') && !w.starts_with("--") && w.contains(short)
        }
    });
    if !uses {
        return Err(format!("its case never uses it: {used}"));
    }
    match p {
        Proof::Differs {
            setup,
            traffic,
            with,
            without,
            observe,
            input,
        } => {
            let mut outputs = Vec::new();
            for line in [with, without] {
                let mut e = engine();
                for l in setup {
                    must(&mut e, l, None)?;
                }
                for svc in e.table().services() {
                    svc.stats.worker(0).inbytes.add(traffic);
                }
                let r = must(&mut e, line, if line == with { input } else { None })?;
                outputs.push(if observe.is_empty() {
                    r.stdout
                } else {
                    must(&mut e, observe, None)?.stdout
                });
            }
            if outputs[0] == outputs[1] {
                return Err(format!(
                    "`{with}` and `{without}` leave the same `{observe}`:\n{}",
                    outputs[0]
                ));
            }
        }
        Proof::Refused { setup, line } => {
            let mut e = engine();
            for l in setup {
                must(&mut e, l, None)?;
            }
            let before = state(&mut e);
            let r = run(&mut e, line, None);
            if r.code == 0 {
                return Err(format!("`{line}` was accepted"));
            }
            if r.stderr.trim().is_empty() {
                return Err(format!("`{line}` was refused without a word"));
            }
            if state(&mut e) != before {
                return Err(format!("`{line}` was refused but changed the table"));
            }
        }
    }
    Ok(())
}

#[test]
fn every_option_changes_what_rvsd_keeps_or_prints_or_is_refused() {
    let mut failures = Vec::new();
    for (long, short) in option_table() {
        let result = match proof(long, short) {
            None => Err("no case proves it does anything".to_string()),
            Some(p) => check(long, short, p),
        };
        if let Err(why) = result {
            failures.push(format!("--{long}: {why}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
