//! nginx as a real server in a test namespace.
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use super::netns::Netns;
use super::{wait_until, TempDir};

/// A running nginx: its prefix (logs, pid) and web root.
pub struct Nginx {
    pub root: PathBuf,
    pub www: PathBuf,
}

/// Starts nginx in namespace `rs` under `dir`/nginx-`rs`, listening on
/// `port` of each of `addrs` with `listen_flags` (e.g. "proxy_protocol"),
/// with `http_extra` in its http block and `server_extra` in its one server
/// block; returns once every address listens.
#[allow(clippy::too_many_arguments)]
pub fn start_nginx(
    net: &Netns,
    dir: &TempDir,
    rs: &str,
    addrs: &[&str],
    port: u16,
    listen_flags: &str,
    http_extra: &str,
    server_extra: &str,
) -> Nginx {
    let root = dir.path(&format!("nginx-{rs}"));
    let www = root.join("www");
    fs::create_dir_all(&www).unwrap();
    fs::create_dir_all(root.join("tmp")).unwrap();
    let r = root.display();
    let listens: String = addrs
        .iter()
        .map(|a| {
            let a = if a.contains(':') {
                format!("[{a}]")
            } else {
                a.to_string()
            };
            format!("    listen {a}:{port} {listen_flags};\n")
        })
        .collect();
    let conf = format!(
        "worker_processes 1;\n\
         daemon off;\n\
         user root root;\n\
         pid {r}/nginx.pid;\n\
         error_log {r}/error.log;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n\
           access_log {r}/access.log;\n\
           client_body_temp_path {r}/tmp/body;\n\
           proxy_temp_path {r}/tmp/proxy;\n\
           fastcgi_temp_path {r}/tmp/fastcgi;\n\
           uwsgi_temp_path {r}/tmp/uwsgi;\n\
           scgi_temp_path {r}/tmp/scgi;\n\
           default_type text/plain;\n\
           {http_extra}\n\
           server {{\n\
         {listens}\
             root {www};\n\
             {server_extra}\n\
           }}\n\
         }}\n",
        www = www.display(),
    );
    let path = root.join("nginx.conf");
    fs::write(&path, conf).unwrap();
    net.spawn(
        rs,
        &["nginx", "-p", &r.to_string(), "-c", path.to_str().unwrap()],
        &root.join("stdout.log"),
    );
    let want = addrs.len();
    let ready = wait_until(Duration::from_secs(15), || {
        let out = net.run(rs, &["ss", "-Htln", &format!("sport = :{port}")]);
        String::from_utf8_lossy(&out.stdout).lines().count() >= want
    });
    assert!(
        ready,
        "nginx in {rs} not listening on port {port}:\n{}",
        fs::read_to_string(root.join("error.log")).unwrap_or_default()
    );
    Nginx { root, www }
}
