//! keepalived configurations, in the style of keepalived's doc/samples and
//! of operators' files, and the `rvsadm -S -n` and `--check-list` text
//! each must give: written by hand from keepalived's documented semantics
//! and defaults (delay_loop 60, connect_timeout 5, retry 1, HTTP
//! delay_before_retry 3 and 1 otherwise, status 200-299, lvs_sched wlc,
//! weight 1, inhibit_on_failure off), not from this code's output.
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::ctl::engine::Engine;

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("rvs-ka-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(e: &mut Engine, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let r = e.execute("rvsadm", &args, None);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    r.stdout
}

fn started(path: &Path) -> (Engine, Keepalived) {
    let mut e = scratch_engine();
    let mut k = Keepalived::new(path);
    k.apply(&mut e).unwrap_or_else(|err| panic!("{err}"));
    (e, k)
}

fn save(e: &mut Engine) -> String {
    run(e, &["-S", "-n"])
}

fn check_list(e: &mut Engine) -> String {
    run(e, &["--check-list"])
}

#[test]
fn nat_pair_with_http_get_digest() {
    let d = Dir::new("nat");
    let f = d.file(
        "keepalived.conf",
        r#"! Configuration File for keepalived

global_defs {
   notification_email {
     acassen@firewall.loc
   }
   smtp_server 192.168.200.1
   router_id LVS_DEVEL
}

virtual_server 192.168.200.100 80 {
    delay_loop 6
    lb_algo rr
    lb_kind NAT
    protocol TCP

    real_server 10.0.0.1 80 {
        weight 1
        HTTP_GET {
            url {
              path /testurl/test.jsp
              digest 640205B7B0FC66C1EA91C463FAC6334D
            }
            connect_timeout 3
            retry 3
            delay_before_retry 3
        }
    }
    real_server 10.0.0.2 80 {
        weight 2
        HTTP_GET {
            url {
              path /testurl/test.jsp
              digest 640205b7b0fc66c1ea91c463fac6334d
            }
            connect_timeout 3
            nb_get_retry 3
            delay_before_retry 3
        }
    }
}
"#,
    );
    let loaded = load(&f).unwrap();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(
        loaded.warnings[0].ends_with(
            ":3: global_defs: skipped (rvs reads only virtual_server and virtual_server_group)"
        ),
        "{:?}",
        loaded.warnings
    );
    let (mut e, _) = started(&f);
    assert_eq!(
        save(&mut e),
        "-A -t 192.168.200.100:80 -s rr\n\
         -a -t 192.168.200.100:80 -r 10.0.0.1:80 -m -w 1\n\
         -a -t 192.168.200.100:80 -r 10.0.0.2:80 -m -w 2\n\
         --check-set -t 192.168.200.100:80 checktype=negotiate service=http request=/testurl/test.jsp status=200-299 digest=640205b7b0fc66c1ea91c463fac6334d checkinterval=6 checktimeout=3 rise=1 fall=4 quiescent=no retryinterval=3 firstcheck=decides\n"
    );
    assert_eq!(
        check_list(&mut e),
        "-t 192.168.200.100:80 checktype=negotiate service=http request=/testurl/test.jsp status=200-299 digest=640205b7b0fc66c1ea91c463fac6334d checkinterval=6 checktimeout=3 rise=1 fall=4 quiescent=no retryinterval=3 firstcheck=decides\n\
         \x20 -> 10.0.0.1:80 unchecked\n\
         \x20 -> 10.0.0.2:80 unchecked\n"
    );
}

#[test]
fn dr_fwmark_with_persistence() {
    let d = Dir::new("fwm");
    let f = d.file(
        "keepalived.conf",
        "virtual_server fwmark 100 {\n\
         \x20   delay_loop 10\n\
         \x20   lb_algo wlc\n\
         \x20   lb_kind DR\n\
         \x20   persistence_timeout 600\n\
         \x20   persistence_granularity 255.255.255.0\n\
         \x20   inhibit_on_failure\n\
         \x20   real_server 10.1.0.1 {\n\
         \x20       weight 5\n\
         \x20       TCP_CHECK {\n\
         \x20           connect_port 443\n\
         \x20       }\n\
         \x20   }\n\
         \x20   real_server 10.1.0.2 {\n\
         \x20       weight 5\n\
         \x20       TCP_CHECK {\n\
         \x20           connect_port 443\n\
         \x20       }\n\
         \x20   }\n\
         }\n",
    );
    let (mut e, _) = started(&f);
    assert_eq!(
        save(&mut e),
        "-A -f 100 -s wlc -p 600 -M 255.255.255.0\n\
         -a -f 100 -r 10.1.0.1:0 -g -w 5\n\
         -a -f 100 -r 10.1.0.2:0 -g -w 5\n\
         --check-set -f 100 checktype=connect checkport=443 checkinterval=10 checktimeout=5 rise=1 fall=2 quiescent=yes retryinterval=1 firstcheck=decides\n"
    );
}

#[test]
fn virtual_server_group_expands_to_one_service_per_address() {
    let d = Dir::new("group");
    let f = d.file(
        "keepalived.conf",
        "virtual_server_group WEB {\n\
         \x20   10.2.0.1-3 80\n\
         \x20   fwmark 7\n\
         }\n\
         virtual_server group WEB {\n\
         \x20   lvs_sched wrr\n\
         \x20   lvs_method DR\n\
         \x20   protocol TCP\n\
         \x20   real_server 10.3.0.1 80 {\n\
         \x20       weight 3\n\
         \x20   }\n\
         }\n",
    );
    let (mut e, _) = started(&f);
    assert_eq!(
        save(&mut e),
        "-A -t 10.2.0.1:80 -s wrr\n\
         -a -t 10.2.0.1:80 -r 10.3.0.1:80 -g -w 3\n\
         -A -t 10.2.0.2:80 -s wrr\n\
         -a -t 10.2.0.2:80 -r 10.3.0.1:80 -g -w 3\n\
         -A -t 10.2.0.3:80 -s wrr\n\
         -a -t 10.2.0.3:80 -r 10.3.0.1:80 -g -w 3\n\
         -A -f 7 -s wrr\n\
         -a -f 7 -r 10.3.0.1:80 -g -w 3\n"
    );
}

#[test]
fn fnat_with_sorry_server_and_ssl_get() {
    let d = Dir::new("fnat");
    let f = d.file(
        "keepalived.conf",
        "virtual_server 2001:db8::10 443 {\n\
         \x20   lvs_sched mh\n\
         \x20   lvs_method FNAT\n\
         \x20   protocol TCP\n\
         \x20   sorry_server 2001:db8::99 443\n\
         \x20   real_server 2001:db8::1 443 {\n\
         \x20       SSL_GET {\n\
         \x20           url {\n\
         \x20               path /healthz\n\
         \x20               status_code 200\n\
         \x20           }\n\
         \x20           connect_port 8443\n\
         \x20       }\n\
         \x20   }\n\
         \x20   real_server 2001:db8::2 443 {\n\
         \x20       SSL_GET {\n\
         \x20           url {\n\
         \x20               path /healthz\n\
         \x20               status_code 200\n\
         \x20           }\n\
         \x20           connect_port 8443\n\
         \x20       }\n\
         \x20   }\n\
         }\n",
    );
    let (mut e, _) = started(&f);
    assert_eq!(
        save(&mut e),
        "-A -t [2001:db8::10]:443 -s mh\n\
         -a -t [2001:db8::10]:443 -r [2001:db8::1]:443 -b -w 1\n\
         -a -t [2001:db8::10]:443 -r [2001:db8::2]:443 -b -w 1\n\
         --check-set -t [2001:db8::10]:443 checktype=negotiate service=https request=/healthz status=200 checkport=8443 checkinterval=60 checktimeout=5 rise=1 fall=2 quiescent=no retryinterval=3 firstcheck=decides quorum=1 hysteresis=0\n\
         --sorry-set -t [2001:db8::10]:443 -r [2001:db8::99]:443 -b -w 1\n"
    );
    assert_eq!(
        check_list(&mut e),
        "-t [2001:db8::10]:443 checktype=negotiate service=https request=/healthz status=200 checkport=8443 checkinterval=60 checktimeout=5 rise=1 fall=2 quiescent=no retryinterval=3 firstcheck=decides quorum=1 hysteresis=0\n\
         \x20 sorry [2001:db8::99]:443 standing by\n\
         \x20 -> [2001:db8::1]:443 unchecked\n\
         \x20 -> [2001:db8::2]:443 unchecked\n"
    );
}

#[test]
fn include_of_a_real_server_file_and_misc_check_with_alpha() {
    let d = Dir::new("inc");
    d.file(
        "rs/a.conf",
        "real_server 10.4.0.1 53 {\n\
         \x20   MISC_CHECK {\n\
         \x20       misc_path \"/usr/local/bin/check_dns 10.4.0.1\"\n\
         \x20   }\n\
         }\n",
    );
    d.file(
        "rs/b.conf",
        "real_server 10.4.0.2 53 {\n\
         \x20   MISC_CHECK {\n\
         \x20       misc_path \"/usr/local/bin/check_dns 10.4.0.1\"\n\
         \x20   }\n\
         }\n",
    );
    let f = d.file(
        "keepalived.conf",
        "virtual_server 10.4.0.100 53 {\n\
         \x20   protocol UDP\n\
         \x20   lb_algo sh\n\
         \x20   lb_kind NAT\n\
         \x20   delay_loop 15\n\
         \x20   alpha\n\
         \x20   include rs/*.conf\n\
         }\n",
    );
    let (mut e, _) = started(&f);
    assert_eq!(
        save(&mut e),
        "-A -u 10.4.0.100:53 -s sh\n\
         -a -u 10.4.0.100:53 -r 10.4.0.1:53 -m -w 1\n\
         -a -u 10.4.0.100:53 -r 10.4.0.2:53 -m -w 1\n\
         --check-set -u 10.4.0.100:53 checktype=external 'checkcommand=/usr/local/bin/check_dns 10.4.0.1' checkinterval=15 checktimeout=15 rise=1 fall=1 quiescent=no firstcheck=decides initial=down\n"
    );
}

#[test]
fn vrrp_and_other_blocks_warn_once_each_and_are_skipped() {
    let d = Dir::new("vrrp");
    let f = d.file(
        "keepalived.conf",
        "vrrp_script chk {\n\
         \x20   script \"/bin/true\"\n\
         }\n\
         vrrp_instance VI_1 {\n\
         \x20   state MASTER\n\
         \x20   interface eth0\n\
         \x20   virtual_ipaddress {\n\
         \x20       10.5.0.100\n\
         \x20   }\n\
         }\n\
         vrrp_sync_group G {\n\
         \x20   group {\n\
         \x20       VI_1\n\
         \x20   }\n\
         }\n\
         virtual_server 10.5.0.100 25 {\n\
         \x20   smtp_alert\n\
         \x20   real_server 10.5.0.1 25 {\n\
         \x20   }\n\
         }\n",
    );
    let loaded = load(&f).unwrap();
    let tails: Vec<&str> = loaded
        .warnings
        .iter()
        .map(|w| w.rsplit_once(".conf:").unwrap().1)
        .collect();
    assert_eq!(
        tails,
        [
            "1: vrrp_script: skipped (rvs reads only virtual_server and virtual_server_group)",
            "4: vrrp_instance: skipped (rvs reads only virtual_server and virtual_server_group)",
            "11: vrrp_sync_group: skipped (rvs reads only virtual_server and virtual_server_group)",
            "17: smtp_alert: skipped (rvs sends no mail)",
            "16: virtual_server has no protocol; UDP, as keepalived defaults",
            "16: virtual_server has no lvs_method; NAT, as keepalived defaults",
        ]
    );
    let (mut e, _) = started(&f);
    assert_eq!(
        save(&mut e),
        "-A -u 10.5.0.100:25 -s wlc\n-a -u 10.5.0.100:25 -r 10.5.0.1:25 -m -w 1\n"
    );
}

fn error_of(text: &str) -> String {
    let d = Dir::new("err");
    let f = d.file("k.conf", text);
    let mut e = scratch_engine();
    let err = Keepalived::new(&f).apply(&mut e).unwrap_err().to_string();
    assert_eq!(save(&mut e), "", "nothing may be applied");
    err.split_once("k.conf:")
        .map(|(_, t)| t.to_string())
        .unwrap_or(err)
}

#[test]
fn a_bad_line_is_named_by_file_and_line() {
    for (text, want) in [
        ("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  persistence_timeout 60\n  persistence_granularity nonsense\n}\n", "1: "),
        ("virtual_server 10.0.0.1 80 {\n  lb_algo bogus\n  protocol TCP\n}\n", "2: lb_algo: \"bogus\": want one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos"),
        ("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lb_kind XYZ\n}\n", "3: lb_kind: \"XYZ\": want NAT, DR, TUN or FNAT"),
        ("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.0.0.2 80 {\n    weight many\n  }\n}\n", "4: weight: \"many\": want a whole number from 0 to 65535"),
        ("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  bogus_keyword 1\n}\n", "3: bogus_keyword: not a virtual_server keyword rvs knows"),
        ("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.0.0.2 80 {\n    notify_up /bin/x\n  }\n}\n", "4: notify_up: rvs runs no notify scripts; watch rvs_dest_up and rvs_service_sorry_in_use in /metrics instead"),
        ("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.0.0.2 80 {\n    BFD_CHECK {\n    }\n  }\n}\n", "4: BFD_CHECK: rvs has no such checker; a MISC_CHECK with a script can do it"),
        ("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.0.0.2 80 {\n    TCP_CHECK {\n    }\n  }\n  real_server 10.0.0.3 80 {\n  }\n}\n", "7: rvs checks every real server of a service the same way: this one has no checker, the one at "),
        ("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.0.0.2 80 {\n    HTTP_GET {\n    }\n  }\n}\n", "4: HTTP_GET: needs a url { path ... } block"),
        ("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  delay_loop 0.01\n  real_server 10.0.0.2 80 {\n    TCP_CHECK {\n    }\n  }\n}\n", "5: --check-set: checkinterval=0.01: want 0.1 to 86400 seconds"),
        ("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  sorry_server 10.0.0.9 80\n  quorum 2\n  real_server 10.0.0.2 80 {\n    weight 5\n  }\n}\n", "4: quorum and hysteresis need checkers on the real servers: rvs weighs the servers its checks call alive"),
        ("virtual_server_group G {\n  10.0.0.0/8 80\n}\n", "2: \"10.0.0.0/8\" stands for more than 4096 addresses"),
        ("virtual_server group G {\n}\n", "1: virtual_server: group \"G\" is not defined"),
        ("virtual_server 10.0.0.1 80 {\n  protocol TCP\n}\nvirtual_server 10.0.0.1 80 {\n  protocol TCP\n}\n", "4: -t 10.0.0.1:80 is defined already at "),
        ("virtual_server 10.0.0.1 80 {\n  protocol TCP\n", "1: this '{' is never closed"),
        ("$VIP=10.0.0.1\n", "1: $VIP=10.0.0.1: rvs does not expand keepalived's parameters"),
        ("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  ip_family inet6\n}\n", "1: ip_family says inet6 but the address 10.0.0.1 is not"),
    ] {
        let got = error_of(text);
        assert!(got.starts_with(want), "{text}\n got: {got}\nwant: {want}");
    }
}

#[test]
fn no_panic_on_junk() {
    let d = Dir::new("junk");
    for text in [
        "virtual_server",
        "virtual_server {",
        "virtual_server 1.2.3.4 80 { real_server }",
        "virtual_server fwmark 0 {\n}\n",
        "virtual_server_group G {\n 10.0.0.9-1 80\n}\n",
        "virtual_server_group G {\n ::1-zz 80\n}\n",
        "virtual_server 1.2.3.4 80 {\n real_server 1.1.1.1 80 {\n UDP_CHECK {\n payload zz\n }\n }\n}\n",
        "include",
        "}}}}",
        "virtual_server 1.2.3.4 99999 {\n}\n",
    ] {
        let f = d.file("j.conf", text);
        let _ = Keepalived::new(&f).apply(&mut scratch_engine());
    }
}

/// The same service set up by a rules file first is no conflict: the file
/// is applied as a difference.
#[test]
fn rules_that_hold_the_same_service_are_no_conflict() {
    let d = Dir::new("same");
    let f = d.file(
        "k.conf",
        "virtual_server 10.6.0.1 80 {\n  protocol TCP\n  lb_algo rr\n  lb_kind DR\n  real_server 10.6.0.2 80 {\n  }\n}\n",
    );
    let mut e = scratch_engine();
    let r = e.restore("rvsadm", "-A -t 10.6.0.1:80 -s rr\n-a -t 10.6.0.1:80 -r 10.6.0.2:80 -g -w 1\n-A -t 10.6.0.9:80 -s wlc\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let c = Keepalived::new(&f).apply(&mut e).unwrap();
    assert!(c.is_empty(), "{c}");
    assert!(
        save(&mut e).contains("-A -t 10.6.0.9:80 -s wlc\n"),
        "a service the file does not define stays"
    );
}

#[test]
fn reload_changes_only_what_the_file_changed() {
    let d = Dir::new("reload");
    let before = "virtual_server 10.7.0.1 80 {\n\
                  \x20 protocol TCP\n\
                  \x20 lb_algo rr\n\
                  \x20 lb_kind NAT\n\
                  \x20 real_server 10.7.1.1 80 {\n\
                  \x20   weight 1\n\
                  \x20 }\n\
                  }\n\
                  virtual_server 10.7.0.2 80 {\n\
                  \x20 protocol TCP\n\
                  \x20 lb_algo rr\n\
                  \x20 lb_kind NAT\n\
                  \x20 real_server 10.7.2.1 80 {\n\
                  \x20   weight 1\n\
                  \x20 }\n\
                  \x20 real_server 10.7.2.2 80 {\n\
                  \x20   weight 1\n\
                  \x20 }\n\
                  }\n\
                  virtual_server 10.7.0.3 80 {\n\
                  \x20 protocol TCP\n\
                  }\n";
    let f = d.file("k.conf", before);
    let (mut e, mut k) = started(&f);
    let key = |a: &str| crate::ipvs::ServiceKey::Addr {
        proto: crate::ipvs::Protocol::Tcp,
        addr: a.parse().unwrap(),
        port: 80,
    };
    let dest = |e: &Engine, svc: &str, real: &str| {
        e.table()
            .get(&key(svc))
            .and_then(|s| {
                s.configured_dests()
                    .find(|d| d.addr() == real.parse::<IpAddr>().unwrap())
                    .cloned()
            })
            .unwrap()
    };
    let untouched = dest(&e, "10.7.0.1", "10.7.1.1");
    let kept = dest(&e, "10.7.0.2", "10.7.2.1");
    let svc_before = e.table().get(&key("10.7.0.1")).cloned().unwrap();

    // 10.7.0.1 unchanged; 10.7.0.2: scheduler, one weight, one real gone,
    // one added, a check; 10.7.0.3 gone; 10.7.0.4 new.
    let after = "virtual_server 10.7.0.1 80 {\n\
                 \x20 protocol TCP\n\
                 \x20 lb_algo rr\n\
                 \x20 lb_kind NAT\n\
                 \x20 real_server 10.7.1.1 80 {\n\
                 \x20   weight 1\n\
                 \x20 }\n\
                 }\n\
                 virtual_server 10.7.0.2 80 {\n\
                 \x20 protocol TCP\n\
                 \x20 lb_algo wlc\n\
                 \x20 lb_kind NAT\n\
                 \x20 real_server 10.7.2.1 80 {\n\
                 \x20   weight 4\n\
                 \x20   TCP_CHECK {\n\
                 \x20   }\n\
                 \x20 }\n\
                 \x20 real_server 10.7.2.3 80 {\n\
                 \x20   TCP_CHECK {\n\
                 \x20   }\n\
                 \x20 }\n\
                 }\n\
                 virtual_server 10.7.0.4 80 {\n\
                 \x20 protocol TCP\n\
                 }\n";
    d.file("k.conf", after);
    let c = k.apply(&mut e).unwrap();
    assert_eq!(
        c.to_string(),
        "1 service added, 1 service removed, 1 service changed, 1 real server added, 1 real server removed, 1 real server changed, 1 check changed"
    );
    assert!(
        Arc::ptr_eq(&untouched, &dest(&e, "10.7.0.1", "10.7.1.1")),
        "an unchanged service keeps its dest, stats and conns"
    );
    assert!(
        Arc::ptr_eq(&svc_before, e.table().get(&key("10.7.0.1")).unwrap()),
        "an unchanged service is the same service"
    );
    let now = dest(&e, "10.7.0.2", "10.7.2.1");
    assert!(Arc::ptr_eq(&kept, &now), "-e edits a real server in place");
    assert_eq!(now.admin_weight(), 4);
    assert_eq!(
        save(&mut e),
        "-A -t 10.7.0.1:80 -s rr\n\
         -a -t 10.7.0.1:80 -r 10.7.1.1:80 -m -w 1\n\
         -A -t 10.7.0.2:80 -s wlc\n\
         -a -t 10.7.0.2:80 -r 10.7.2.1:80 -m -w 4\n\
         -a -t 10.7.0.2:80 -r 10.7.2.3:80 -m -w 1\n\
         -A -t 10.7.0.4:80 -s wlc\n\
         --check-set -t 10.7.0.2:80 checktype=connect checkinterval=60 checktimeout=5 rise=1 fall=2 quiescent=no retryinterval=1 firstcheck=decides\n"
    );

    // A broken edit changes nothing and names its line.
    d.file("k.conf", &after.replace("lb_algo wlc", "lb_algo nope"));
    let before_save = save(&mut e);
    let err = k.apply(&mut e).unwrap_err().to_string();
    assert!(err.ends_with("k.conf:11: lb_algo: \"nope\": want one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos"), "{err}");
    assert_eq!(save(&mut e), before_save);
    // Applying the same file again changes nothing.
    d.file("k.conf", after);
    assert!(k.apply(&mut e).unwrap().is_empty());
}

#[test]
fn quorum_and_hysteresis_with_a_sorry_server() {
    let d = Dir::new("quorum");
    let mut text = String::from(
        "virtual_server 10.8.0.1 80 {\n\
         \x20   protocol TCP\n\
         \x20   lb_kind DR\n\
         \x20   quorum 4\n\
         \x20   hysteresis 1\n\
         \x20   sorry_server 10.8.9.9\n",
    );
    for i in 1..=3 {
        text.push_str(&format!(
            "    real_server 10.8.1.{i} 80 {{\n        weight 2\n        TCP_CHECK {{\n        }}\n    }}\n"
        ));
    }
    text.push_str("}\n");
    let f = d.file("k.conf", &text);
    let (mut e, _) = started(&f);
    assert_eq!(
        save(&mut e),
        "-A -t 10.8.0.1:80 -s wlc\n\
         -a -t 10.8.0.1:80 -r 10.8.1.1:80 -g -w 2\n\
         -a -t 10.8.0.1:80 -r 10.8.1.2:80 -g -w 2\n\
         -a -t 10.8.0.1:80 -r 10.8.1.3:80 -g -w 2\n\
         --check-set -t 10.8.0.1:80 checktype=connect checkinterval=60 checktimeout=5 rise=1 fall=2 quiescent=no retryinterval=1 firstcheck=decides quorum=4 hysteresis=1\n\
         --sorry-set -t 10.8.0.1:80 -r 10.8.9.9:80 -g -w 1\n"
    );
}

#[test]
fn dns_check_with_keepalived_defaults() {
    let d = Dir::new("dns");
    let f = d.file(
        "k.conf",
        "virtual_server 10.9.0.53 53 {\n\
         \x20   protocol UDP\n\
         \x20   lb_algo rr\n\
         \x20   lb_kind DR\n\
         \x20   delay_loop 5\n\
         \x20   real_server 10.9.1.1 53 {\n\
         \x20       DNS_CHECK {\n\
         \x20           type A\n\
         \x20           name www.example.com\n\
         \x20       }\n\
         \x20   }\n\
         \x20   real_server 10.9.1.2 53 {\n\
         \x20       DNS_CHECK {\n\
         \x20           type A\n\
         \x20           name www.example.com\n\
         \x20       }\n\
         \x20   }\n\
         }\n",
    );
    let (mut e, _) = started(&f);
    // retry 3 by default for DNS_CHECK, retried after delay_loop.
    assert_eq!(
        save(&mut e),
        "-A -u 10.9.0.53:53 -s rr\n\
         -a -u 10.9.0.53:53 -r 10.9.1.1:53 -g -w 1\n\
         -a -u 10.9.0.53:53 -r 10.9.1.2:53 -g -w 1\n\
         --check-set -u 10.9.0.53:53 checktype=negotiate service=dns request=www.example.com querytype=A checkinterval=5 checktimeout=5 rise=1 fall=4 quiescent=no firstcheck=decides\n"
    );
}

#[test]
fn several_urls_with_status_ranges_and_virtualhost() {
    let d = Dir::new("urls");
    let rs = |a: &str| {
        format!(
            "    real_server {a} 8080 {{\n\
             \x20       HTTP_GET {{\n\
             \x20           url {{\n\
             \x20               path /health\n\
             \x20               status_code 200-299 301 503\n\
             \x20           }}\n\
             \x20           url {{\n\
             \x20               path /ready\n\
             \x20               virtualhost ready.example.com\n\
             \x20           }}\n\
             \x20       }}\n\
             \x20   }}\n"
        )
    };
    let text = format!(
        "virtual_server 10.10.0.1 80 {{\n\
         \x20   protocol TCP\n\
         \x20   virtualhost www.example.com\n\
         {}{}}}\n",
        rs("10.10.1.1"),
        rs("10.10.1.2")
    );
    let f = d.file("k.conf", &text);
    let (mut e, _) = started(&f);
    assert_eq!(
        save(&mut e),
        "-A -t 10.10.0.1:80 -s wlc\n".to_string()
            + "-a -t 10.10.0.1:80 -r 10.10.1.1:8080 -m -w 1\n\
               -a -t 10.10.0.1:80 -r 10.10.1.2:8080 -m -w 1\n\
               --check-set -t 10.10.0.1:80 checktype=negotiate service=http request=/health virtualhost=www.example.com status=200-299,301,503 request=/ready virtualhost=ready.example.com status=200-299 checkinterval=60 checktimeout=5 rise=1 fall=2 quiescent=no retryinterval=3 firstcheck=decides\n"
    );
}

#[test]
fn reload_sets_and_removes_checks_and_sorry_servers() {
    let d = Dir::new("reload-health");
    let base = "virtual_server 10.11.0.1 80 {\n  protocol TCP\n  lb_kind DR\nSORRY  real_server 10.11.1.1 80 {\nCHECK  }\n}\n";
    let conf = |sorry: &str, check: &str| base.replace("SORRY", sorry).replace("CHECK", check);
    let f = d.file("k.conf", &conf("", ""));
    let (mut e, mut k) = started(&f);
    d.file(
        "k.conf",
        &conf(
            "  sorry_server 10.11.9.9 80\n",
            "    TCP_CHECK {\n      connect_timeout 2\n    }\n",
        ),
    );
    assert_eq!(
        k.apply(&mut e).unwrap().to_string(),
        "1 check changed, 1 sorry server changed"
    );
    assert!(save(&mut e).contains("--sorry-set -t 10.11.0.1:80 -r 10.11.9.9:80 -g -w 1\n"));
    d.file(
        "k.conf",
        &conf(
            "  sorry_server 10.11.9.8 80\n  sorry_server_lvs_method NAT\n",
            "    TCP_CHECK {\n      connect_timeout 3\n    }\n",
        ),
    );
    assert_eq!(
        k.apply(&mut e).unwrap().to_string(),
        "1 check changed, 1 sorry server changed"
    );
    assert!(save(&mut e).contains("--sorry-set -t 10.11.0.1:80 -r 10.11.9.8:80 -m -w 1\n"));
    assert!(save(&mut e).contains("checktimeout=3 "));
    d.file("k.conf", &conf("", ""));
    assert_eq!(
        k.apply(&mut e).unwrap().to_string(),
        "1 check changed, 1 sorry server changed"
    );
    assert_eq!(
        save(&mut e),
        "-A -t 10.11.0.1:80 -s wlc\n-a -t 10.11.0.1:80 -r 10.11.1.1:80 -g -w 1\n"
    );
    assert_eq!(check_list(&mut e), "");
}

/// -S does not list thresholds (nor does ipvsadm's), yet a reload that
/// changes them is applied.
#[test]
fn thresholds_are_set_and_reloaded() {
    let d = Dir::new("thresh");
    let conf = |x: &str| {
        format!("virtual_server 10.12.0.1 80 {{\n  protocol TCP\n  lb_kind NAT\n  real_server 10.12.1.1 80 {{\n{x}  }}\n}}\n")
    };
    let f = d.file("k.conf", &conf("    uthreshold 100\n    lthreshold 50\n"));
    let (mut e, mut k) = started(&f);
    let thresholds = |e: &Engine| {
        let key = crate::ipvs::ServiceKey::Addr {
            proto: crate::ipvs::Protocol::Tcp,
            addr: "10.12.0.1".parse().unwrap(),
            port: 80,
        };
        let s = e.table().get(&key).unwrap();
        let d = s.configured_dests().next().unwrap();
        (d.u_threshold(), d.l_threshold())
    };
    assert_eq!(thresholds(&e), (100, 50));
    d.file("k.conf", &conf("    uthreshold 200\n"));
    assert_eq!(
        k.apply(&mut e).unwrap().to_string(),
        "1 real server changed"
    );
    assert_eq!(thresholds(&e), (200, 0));
    d.file("k.conf", &conf(""));
    assert_eq!(
        k.apply(&mut e).unwrap().to_string(),
        "1 real server changed"
    );
    assert_eq!(thresholds(&e), (0, 0));
    assert!(k.apply(&mut e).unwrap().is_empty());
}

/// keepalived's connect_port may differ per real server (and gives a
/// fwmark service's real servers on port 0 a port to check).
#[test]
fn connect_port_per_real_server() {
    let d = Dir::new("ports");
    let f = d.file(
        "k.conf",
        "virtual_server fwmark 9 {\n\
         \x20   lb_kind DR\n\
         \x20   real_server 10.13.1.1 {\n\
         \x20       TCP_CHECK {\n\
         \x20           connect_port 8081\n\
         \x20       }\n\
         \x20   }\n\
         \x20   real_server 10.13.1.2 {\n\
         \x20       TCP_CHECK {\n\
         \x20           connect_port 8082\n\
         \x20       }\n\
         \x20   }\n\
         }\n",
    );
    let (mut e, _) = started(&f);
    assert_eq!(
        save(&mut e),
        "-A -f 9 -s wlc\n\
         -a -f 9 -r 10.13.1.1:0 -g -w 1\n\
         -a -f 9 -r 10.13.1.2:0 -g -w 1\n\
         --check-set -f 9 checktype=connect checkport.10.13.1.1:0=8081 checkport.10.13.1.2:0=8082 checkinterval=60 checktimeout=5 rise=1 fall=2 quiescent=no retryinterval=1 firstcheck=decides\n"
    );
    let health = e
        .health()
        .check(&e.table().services()[0].key())
        .cloned()
        .unwrap();
    assert_eq!(health.port_for("10.13.1.2".parse().unwrap(), 0), 8082);
}

#[test]
fn smtp_check_with_helo_name() {
    let d = Dir::new("smtp");
    let f = d.file(
        "k.conf",
        "virtual_server 10.14.0.25 25 {\n\
         \x20   protocol TCP\n\
         \x20   lb_kind DR\n\
         \x20   delay_loop 15\n\
         \x20   real_server 10.14.1.1 25 {\n\
         \x20       SMTP_CHECK {\n\
         \x20           helo_name director.example.com\n\
         \x20           connect_timeout 10\n\
         \x20       }\n\
         \x20   }\n\
         }\n",
    );
    let (mut e, _) = started(&f);
    assert_eq!(
        save(&mut e),
        "-A -t 10.14.0.25:25 -s wlc\n\
         -a -t 10.14.0.25:25 -r 10.14.1.1:25 -g -w 1\n\
         --check-set -t 10.14.0.25:25 checktype=negotiate service=smtp request=director.example.com checkinterval=15 checktimeout=10 rise=1 fall=2 quiescent=no retryinterval=1 firstcheck=decides\n"
    );
}

#[test]
fn more_than_4096_services_in_all_is_an_error_at_the_one_too_many() {
    // Three groups of 2048 addresses: the third's first address is the 4097th.
    let text: String = (0..3)
        .map(|n| {
            format!(
                "virtual_server_group g{n} {{\n 10.{n}.0.0/21 80\n}}\nvirtual_server group g{n} {{\n protocol TCP\n real_server 10.9.0.1 80 {{\n }}\n}}\n"
            )
        })
        .collect();
    let e = error_of(&text);
    assert_eq!(e, "20: more than 4096 services in all");
}

#[test]
fn tcp_check_on_a_udp_service_is_refused_not_weakened() {
    // No protocol is UDP, as keepalived defaults.
    let e = error_of(
        "virtual_server 198.18.0.53 53 {\n    lb_kind DR\n    real_server 198.19.0.11 53 {\n        TCP_CHECK {\n        }\n    }\n}\n",
    );
    assert!(e.starts_with("4: TCP_CHECK on a UDP virtual server"), "{e}");
}

#[test]
fn a_nat_sorry_server_keeps_its_port_others_take_the_virtual_servers() {
    let d = Dir::new("sorry-port");
    let vs = |addr: &str, method: &str| {
        format!(
            "virtual_server {addr} 80 {{\n    protocol TCP\n    lb_kind {method}\n    sorry_server 198.19.0.9 8080\n    real_server 198.19.0.11 80 {{\n        TCP_CHECK {{\n        }}\n    }}\n}}\n"
        )
    };
    let f = d.file(
        "k.conf",
        &(vs("198.18.0.100", "NAT") + &vs("198.18.0.101", "DR")),
    );
    let (mut e, _) = started(&f);
    let saved = save(&mut e);
    assert!(
        saved.contains("--sorry-set -t 198.18.0.100:80 -r 198.19.0.9:8080 -m -w 1\n"),
        "{saved}"
    );
    assert!(
        saved.contains("--sorry-set -t 198.18.0.101:80 -r 198.19.0.9:80 -g -w 1\n"),
        "{saved}"
    );
}

#[test]
fn a_quorum_no_weights_reach_and_a_hysteresis_as_large_come_down_as_keepalived_corrects() {
    let d = Dir::new("quorum-fix");
    let real = |a: &str| {
        format!("    real_server {a} 80 {{\n        weight 1\n        TCP_CHECK {{\n        }}\n    }}\n")
    };
    let f = d.file(
        "k.conf",
        &format!(
            "virtual_server 198.18.0.100 80 {{\n    protocol TCP\n    quorum 10\n    hysteresis 20\n    sorry_server 198.19.0.9 80\n{}{}}}\n",
            real("198.19.0.11"),
            real("198.19.0.12")
        ),
    );
    let loaded = super::load(&f).unwrap();
    assert!(
        loaded.warnings.iter().any(|w| w.ends_with(
            "k.conf:3: quorum 10 is more than the real servers' weights add up to: 2, as keepalived lowers it"
        )),
        "{:?}",
        loaded.warnings
    );
    assert!(
        loaded.warnings.iter().any(|w| w.ends_with(
            "k.conf:4: hysteresis 20 is not below the quorum 2: 1, as keepalived lowers it"
        )),
        "{:?}",
        loaded.warnings
    );
    let (mut e, _) = started(&f);
    let saved = save(&mut e);
    assert!(saved.contains(" quorum=2 hysteresis=1"), "{saved}");
}

#[test]
fn quorum_without_a_sorry_server_warns_that_it_does_nothing() {
    let d = Dir::new("quorum-no-sorry");
    let f = d.file(
        "k.conf",
        "virtual_server 198.18.0.100 80 {\n    protocol TCP\n    quorum 2\n    real_server 198.19.0.11 80 {\n    }\n}\n",
    );
    let w = super::load(&f).unwrap().warnings;
    assert!(
        w.iter().any(|w| w.ends_with("k.conf:3: quorum and hysteresis do nothing without a sorry_server (keepalived's other use is notify scripts, which rvs does not run)")),
        "{w:?}"
    );
}

#[test]
fn a_sorry_server_comes_in_when_the_live_servers_weigh_nothing_as_in_keepalived() {
    let d = Dir::new("sorry-weight");
    let f = d.file(
        "k.conf",
        "virtual_server 198.18.0.100 80 {\n    protocol TCP\n    lb_kind NAT\n    sorry_server 198.19.0.9 80\n    real_server 198.19.0.11 80 {\n        TCP_CHECK {\n        }\n    }\n}\n",
    );
    let (mut e, _) = started(&f);
    assert!(check_list(&mut e).contains("sorry 198.19.0.9:80 standing by"));
    // The operator drains the one real server: alive, but weighing 0.
    run(
        &mut e,
        &[
            "-e",
            "-t",
            "198.18.0.100:80",
            "-r",
            "198.19.0.11:80",
            "-m",
            "-w",
            "0",
        ],
    );
    let list = check_list(&mut e);
    assert!(!list.contains("standing by"), "{list}");
    assert!(
        run(&mut e, &["-Ln"]).contains("198.19.0.9:80"),
        "the sorry server is in the list"
    );
}

#[test]
fn omega_is_skipped_with_a_warning() {
    let d = Dir::new("omega");
    let f = d.file(
        "k.conf",
        "virtual_server 198.18.0.100 80 {\n    protocol TCP\n    omega\n    real_server 198.19.0.11 80 {\n    }\n}\n",
    );
    let w = super::load(&f).unwrap().warnings;
    assert!(
        w.iter().any(|w| w.ends_with("k.conf:3: omega: skipped (it only runs notify scripts at shutdown, which rvs does not run)")),
        "{w:?}"
    );
}
