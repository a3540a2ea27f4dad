//! Captures what DPDK prints while it starts or attaches a device.
//!
//! EAL reports failures through its log and, for bad arguments, a full usage
//! text on stdout; an operator wants one clear line instead. We point fds 1
//! and 2 at a memfd for the duration of the call and pick the useful line.
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{FromRawFd, RawFd};

pub(crate) struct Captured {
    pub text: String,
}

impl Captured {
    /// The most specific EAL line: the last `EAL:` line that is not the generic
    /// FATAL summary, joined with the FATAL summary when there is one.
    pub fn reason(&self) -> Option<String> {
        // Log lines start with their component ("EAL: ", "vdev_probe(): ");
        // EAL's usage text is indented or starts with "Usage" and is skipped.
        let lines: Vec<&str> = self
            .text
            .lines()
            .filter(|l| {
                !l.trim().is_empty()
                    && !l.starts_with(char::is_whitespace)
                    && !l.starts_with("Usage")
                    && l.contains(':')
            })
            .map(str::trim)
            .collect();
        let fatal = lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("EAL: FATAL: "))
            .map(str::trim);
        let specific = lines
            .iter()
            .rev()
            .filter(|l| !l.starts_with("EAL: FATAL") && !l.starts_with("EAL: Error - exiting"))
            .filter(|l| fatal.is_none_or(|f| !l.contains(f)))
            .find(|l| {
                let low = l.to_ascii_lowercase();
                [
                    "invalid", "cannot", "fail", "error", "no ", "not ", "unable", "unknown", ">=",
                ]
                .iter()
                .any(|w| low.contains(w))
            })
            .map(|l| l.trim());
        match (fatal, specific) {
            (Some(f), Some(s)) => Some(format!("{f} {s}")),
            (Some(f), _) => Some(f.to_owned()),
            (None, Some(s)) => Some(s.to_owned()),
            (None, None) => None,
        }
    }
}

struct Redirect {
    saved: [RawFd; 2],
    file: File,
}

fn begin() -> Option<Redirect> {
    // SAFETY: memfd_create with a static NUL-terminated name; the returned fd
    // is owned by the File we build from it and nothing else.
    let fd = unsafe { libc::memfd_create(c"rvs-dpdk-log".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is a fresh, valid descriptor we exclusively own.
    let file = unsafe { File::from_raw_fd(fd) };
    let mut saved = [-1; 2];
    for (i, target) in [1, 2].into_iter().enumerate() {
        // SAFETY: flushing C stdio and duplicating standard descriptors has no
        // memory-safety preconditions; failures are checked.
        unsafe {
            libc::fflush(std::ptr::null_mut());
            saved[i] = libc::dup(target);
            if saved[i] < 0 || libc::dup2(fd, target) < 0 {
                restore(&saved);
                return None;
            }
        }
    }
    Some(Redirect { saved, file })
}

fn restore(saved: &[RawFd; 2]) {
    for (i, target) in [1, 2].into_iter().enumerate() {
        if saved[i] >= 0 {
            // SAFETY: saved[i] is a descriptor we dup'ed from `target`; putting
            // it back and closing our copy restores the process's stdio.
            unsafe {
                libc::fflush(std::ptr::null_mut());
                libc::dup2(saved[i], target);
                libc::close(saved[i]);
            }
        }
    }
}

/// Runs `f` with stdout and stderr captured. When capturing is impossible, `f`
/// still runs and its output goes where it always would.
pub(crate) fn capture<R>(f: impl FnOnce() -> R) -> (R, Captured) {
    let redirect = begin();
    let r = f();
    let mut text = String::new();
    if let Some(mut red) = redirect {
        restore(&red.saved);
        if red.file.seek(SeekFrom::Start(0)).is_ok() {
            let _ = red.file.read_to_string(&mut text);
        }
    }
    (r, Captured { text })
}

#[cfg(test)]
mod tests {
    use super::Captured;

    fn reason(text: &str) -> Option<String> {
        Captured {
            text: text.to_owned(),
        }
        .reason()
    }

    #[test]
    fn picks_the_specific_line_and_skips_usage_text() {
        let text = "EAL: Detected CPU lcores: 2\nEAL: Option --legacy-mem is not compatible with --in-memory\n\nUsage: rvsd [options]\n\nEAL common options:\n  -c COREMASK  Hexadecimal bitmask of cores to run on (error if invalid)\nEAL: FATAL: Invalid 'command line' arguments.\nEAL: Invalid 'command line' arguments.\n";
        assert_eq!(
            reason(text).as_deref(),
            Some("Invalid 'command line' arguments. EAL: Option --legacy-mem is not compatible with --in-memory")
        );
    }

    #[test]
    fn nothing_useful_gives_none() {
        assert_eq!(reason("EAL: Detected CPU lcores: 2\n"), None);
        assert_eq!(reason(""), None);
    }
}
