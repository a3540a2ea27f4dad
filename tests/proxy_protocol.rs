//! `--proxy-protocol v1|v2` end to end: curl in a client namespace reaches
//! nginx in a real server's namespace, listening with `proxy_protocol`,
//! through rvsd's FULLNAT and NAT services, IPv4 and IPv6 (the routed lab
//! of tests/common/lab.rs). nginx reads the header rvsd put in front of
//! the client's first byte, so it answers and logs the client's true
//! address and port and the VIP's, and an upload and a download of a few
//! MiB come through byte for byte: every later segment's numbers shifted
//! by the header's length, both ways, for the life of the conn.
mod common;

use std::fmt::Write as _;
use std::fs;

use common::lab::{
    host, routed, serial, servers_route_via_rvsd, start_rvsd, Rvsd, CLI4, CLI6, ROUTED_PORTS, RS4,
    RS6, VIP4, VIP6,
};
use common::netns::{text, Netns};
use common::nginx::start_nginx;
use common::TempDir;

const RS_PORT: u16 = 8081;

/// nginx in rs1 on RS_PORT of both its addresses, with proxy_protocol:
/// `/who` answers with what the header said, `/up/` takes PUTs into the
/// web root. Returns its access log, which logs the header's addresses.
fn nginx(net: &Netns, dir: &TempDir) -> std::path::PathBuf {
    let n = start_nginx(
        net,
        dir,
        "rs1",
        &[RS4[0], RS6[0]],
        RS_PORT,
        "proxy_protocol",
        &format!(
            "log_format pp '$proxy_protocol_addr $proxy_protocol_port $proxy_protocol_server_addr $proxy_protocol_server_port $request_method $uri $status';\n\
             access_log {}/pp.log pp;",
            dir.path("nginx-rs1").display()
        ),
        "client_max_body_size 64m;\n\
         location = /who { return 200 \"$proxy_protocol_addr $proxy_protocol_port $proxy_protocol_server_addr $proxy_protocol_server_port\\n\"; }\n\
         location /up/ { dav_methods PUT; }",
    );
    fs::create_dir_all(n.www.join("up")).unwrap();
    n.root.join("pp.log")
}

fn curl(net: &Netns, args: &[&str]) -> String {
    let o = net.curl("cli", "20", args);
    assert!(
        o.status.success(),
        "curl {args:?}: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

fn diag(dir: &TempDir, rvsd: &Rvsd) -> String {
    format!(
        "rvsd -Lnc:\n{}\nnginx error log:\n{}",
        text(&rvsd.adm("-Lnc").stdout),
        fs::read_to_string(dir.path("nginx-rs1").join("error.log")).unwrap_or_default()
    )
}

#[test]
fn nginx_behind_fullnat_and_nat_reads_the_true_client_from_v1_and_v2() {
    let _serial = serial();
    let net = routed("pp", 1);
    let dir = TempDir::new("pp");
    let access = nginx(&net, &dir);
    servers_route_via_rvsd(&net, 1);
    // (VIP, VIP port, version, forwarding flag, client address)
    let services = [
        (VIP4, 81, "v1", "-b", CLI4),
        (VIP4, 82, "v2", "-m", CLI4),
        (VIP6, 81, "v2", "-b", CLI6),
        (VIP6, 82, "v1", "-m", CLI6),
    ];
    let mut rules = String::new();
    for (vip, port, version, fwd, _) in services {
        let rs = if vip.contains(':') { RS6[0] } else { RS4[0] };
        let v = format!("{}:{port}", host(vip));
        let _ = writeln!(rules, "-A -t {v} -s rr --proxy-protocol {version}");
        let _ = writeln!(rules, "-a -t {v} -r {}:{RS_PORT} {fwd}", host(rs));
    }
    let rvsd = start_rvsd(&net, &dir, 1, &ROUTED_PORTS, &rules);
    let saved = rvsd.ok("-Sn");
    assert!(
        saved.contains(&format!("-A -t {VIP4}:81 -s rr --proxy-protocol v1\n")),
        "{saved}"
    );

    // The header's addresses and ports, as nginx parsed them: the client's
    // own port (chosen here) and the VIP it connected to.
    for (i, (vip, port, version, fwd, cli)) in services.iter().enumerate() {
        let cport = 41000 + i as u16;
        let body = curl(
            &net,
            &[
                "--local-port",
                &cport.to_string(),
                &format!("http://{}:{port}/who", host(vip)),
            ],
        );
        assert_eq!(
            body,
            format!("{cli} {cport} {vip} {port}\n"),
            "{version} {fwd} {vip}\n{}",
            diag(&dir, &rvsd)
        );
    }

    // A few MiB up and back down on each: every segment after the header
    // shifted, acknowledgements and SACK shifted back.
    let src = dir.path("blob");
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 7)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(&src, &data).unwrap();
    for (vip, port, version, fwd, _) in services {
        let name = format!("{version}{}{port}", if vip.contains(':') { 6 } else { 4 });
        let url = format!("http://{}:{port}/up/{name}", host(vip));
        let code = curl(
            &net,
            &[
                "-T",
                src.to_str().unwrap(),
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &url,
            ],
        );
        assert!(code == "201" || code == "204", "PUT {url}: {code}");
        let stored = dir.path("nginx-rs1").join("www/up").join(&name);
        assert_eq!(
            common::sha256(&stored),
            common::sha256(&src),
            "upload {version} {fwd} {vip}"
        );
        let back = dir.path(&format!("{name}.back"));
        curl(&net, &["-o", back.to_str().unwrap(), &url]);
        assert_eq!(
            common::sha256(&back),
            common::sha256(&src),
            "download {version} {fwd} {vip}"
        );
    }

    // nginx logged every request with the true client, none with rvsd's
    // local address or a missing header.
    let log = fs::read_to_string(&access).unwrap_or_default();
    let from_client = log
        .lines()
        .filter(|l| l.starts_with(&format!("{CLI4} ")) || l.starts_with(&format!("{CLI6} ")))
        .count();
    // 4 /who, 4 PUTs and 4 GETs through rvsd; the readiness probes came
    // from rs1 itself with curl's own header.
    assert_eq!(from_client, 12, "{log}");
    for (vip, port, ..) in services {
        let n = log
            .lines()
            .filter(|l| l.split_whitespace().nth(2) == Some(vip))
            .filter(|l| l.split_whitespace().nth(3) == Some(&port.to_string()))
            .count();
        assert_eq!(n, 3, "{vip}:{port} in\n{log}");
    }
    let summary = rvsd.stop();
    assert_eq!(common::drops(&summary, "bad_header"), 0, "{summary}");
    assert_eq!(common::drops(&summary, "unsupported"), 0, "{summary}");
}
