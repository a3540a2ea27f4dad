//! The few OS calls rvs needs that std keeps unstable. They live here
//! because this module is where rvs allows `unsafe`.
use std::os::fd::{AsRawFd, BorrowedFd};

/// The pid, uid and gid of the process at the other end of a connected
/// Unix socket, as the kernel recorded them at connect time (SO_PEERCRED),
/// or None when the kernel cannot tell (not a Unix socket).
pub fn peer_credentials(fd: BorrowedFd<'_>) -> Option<(i32, u32, u32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the fd is borrowed, so it stays open for the call; the kernel
    // writes at most `len` bytes into `cred`, a live, properly sized ucred,
    // and `len` is a live socklen_t it may update.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0 && len as usize == std::mem::size_of::<libc::ucred>())
        .then_some((cred.pid, cred.uid, cred.gid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_socketpair_peer_is_this_process() {
        let (a, _b) = UnixStream::pair().unwrap();
        let (pid, uid, gid) = peer_credentials(a.as_fd()).expect("SO_PEERCRED");
        assert_eq!(pid, std::process::id() as i32);
        // /proc/self belongs to this process's effective uid and gid,
        // which is what SO_PEERCRED reports.
        let meta = std::fs::metadata("/proc/self").unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!((uid, gid), (meta.uid(), meta.gid()));
    }

    #[test]
    fn not_a_unix_socket_gives_none() {
        let f = std::fs::File::open("/proc/self/status").unwrap();
        assert_eq!(peer_credentials(f.as_fd()), None);
    }
}
