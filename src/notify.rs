//! systemd's readiness protocol (sd_notify(3)), spoken directly: one
//! datagram to $NOTIFY_SOCKET per state change. A unit of Type=notify waits
//! for READY=1, so `systemctl start rvsd` returns, and units ordered after
//! rvsd start, only once rvsd forwards; linking libsystemd for a few
//! datagrams is not worth a dependency.
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Where the service manager listens: None when rvsd does not run under a
/// manager that asked for notifications.
fn socket() -> Option<String> {
    std::env::var("NOTIFY_SOCKET")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Sends `state` (newline-separated VAR=value assignments) to `target`, a
/// path, or an abstract name written with a leading '@' as systemd does.
pub fn send_to(target: &str, state: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let addr = match target.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
        None if target.starts_with('/') => SocketAddr::from_pathname(target)?,
        None => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "NOTIFY_SOCKET is neither an absolute path nor an @abstract name",
            ))
        }
    };
    let sent = sock.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short datagram"));
    }
    Ok(())
}

/// Tells the service manager, if there is one. Failing to tell it is logged,
/// not fatal: forwarding matters more than the manager's view of it, and a
/// manager that never hears READY=1 times the start out by itself.
pub fn notify(state: &str) {
    let Some(target) = socket() else { return };
    if let Err(e) = send_to(&target, state) {
        log::warn!("cannot notify the service manager at {target}: {e}");
    }
}

/// Ports up, rules applied, workers polling, management socket answering.
pub fn ready(status: &str) {
    notify(&format!("READY=1\nSTATUS={status}\n"));
}

/// Shutdown has begun, so the manager does not mistake it for a hang.
pub fn stopping() {
    notify("STOPPING=1\nSTATUS=stopping\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn an_at_sign_names_an_abstract_socket() {
        let name = format!("rvs-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        send_to(&format!("@{name}"), "READY=1\n").unwrap();
        assert_eq!(recv(&sock), "READY=1\n");
    }

    #[test]
    fn a_path_names_a_socket_in_the_file_system() {
        let dir = std::env::temp_dir().join(format!("rvs-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        send_to(path.to_str().unwrap(), "STOPPING=1\n").unwrap();
        assert_eq!(recv(&sock), "STOPPING=1\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_relative_name_is_refused() {
        assert!(send_to("notify", "READY=1\n").is_err());
    }
}
