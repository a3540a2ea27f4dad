//! checktype=external: the operator's own command decides.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::net::Deadline;
use super::{Probe, Verdict};

/// How often we look at the child: short first (most checks are quick
/// scripts), growing so a slow one costs few wake-ups.
const FIRST_POLL: Duration = Duration::from_millis(2);
const MAX_POLL: Duration = Duration::from_millis(50);

pub(super) fn check(probe: &Probe, deadline: &Deadline, command: &str) -> Verdict {
    let mut cmd = Command::new("sh");
    // $0 names the check in ps(1); $1..$4 are ldirectord's arguments.
    cmd.arg("-c")
        .arg(command)
        .arg("rvs-check")
        .arg(probe.virtual_addr.ip().to_string())
        .arg(probe.virtual_addr.port().to_string())
        .arg(probe.target.ip().to_string())
        .arg(probe.target.port().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so a timeout kills what the script
        // started too, not just sh.
        .process_group(0);
    match probe.source {
        Some(src) => cmd.env("RVS_CHECK_SOURCE", src.to_string()),
        None => cmd.env_remove("RVS_CHECK_SOURCE"),
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Verdict::Down(format!("external: spawn sh: {e}")),
    };
    match wait_until(&mut child, deadline) {
        Ok(Some(status)) => judge(status),
        Ok(None) => {
            kill(&mut child);
            Verdict::Down(format!("external: {}, killed", deadline.timeout_reason()))
        }
        Err(e) => {
            kill(&mut child);
            Verdict::Down(format!("external: wait: {e}"))
        }
    }
}

/// The exit status, or None if the deadline came first.
fn wait_until(child: &mut Child, deadline: &Deadline) -> std::io::Result<Option<ExitStatus>> {
    let mut pause = FIRST_POLL;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let Ok(left) = deadline.remaining() else {
            return Ok(None);
        };
        thread::sleep(pause.min(left));
        pause = (pause * 2).min(MAX_POLL);
    }
}

/// SIGKILL to the whole group, then reap sh so it leaves no zombie.
fn kill(child: &mut Child) {
    let group = i32::try_from(child.id()).map(Pid::from_raw);
    if group.map(|g| killpg(g, Signal::SIGKILL)).is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

fn judge(status: ExitStatus) -> Verdict {
    if status.success() {
        return Verdict::Up;
    }
    match (status.code(), status.signal()) {
        (Some(code), _) => Verdict::Down(format!("external: exit status {code}")),
        (None, Some(sig)) => Verdict::Down(format!("external: killed by signal {sig}")),
        (None, None) => Verdict::Down(format!("external: {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::{CheckKind, Verdict};
    use std::time::{Duration, Instant};

    fn external(command: &str) -> super::super::Probe {
        let mut p = probe(
            CheckKind::External {
                command: command.into(),
            },
            "127.0.0.1:8080".parse().unwrap(),
        );
        p.virtual_addr = "[2001:db8::10]:443".parse().unwrap();
        p
    }

    #[test]
    fn exit_zero_is_up() {
        assert_eq!(run_bounded(&external("exit 0")), Verdict::Up);
    }

    #[test]
    fn exit_one_is_down_with_its_code() {
        let why = down_reason(run_bounded(&external("exit 1")));
        assert_eq!(why, "external: exit status 1");
    }

    #[test]
    fn gets_ldirectords_arguments_and_source() {
        let mut p = external(
            r#"[ "$1" = 2001:db8::10 ] && [ "$2" = 443 ] && [ "$3" = 127.0.0.1 ] && [ "$4" = 8080 ] && [ "$RVS_CHECK_SOURCE" = 127.0.0.2 ]"#,
        );
        p.source = Some("127.0.0.2".parse().unwrap());
        assert_eq!(run_bounded(&p), Verdict::Up);
    }

    #[test]
    fn no_source_means_no_source_variable() {
        let p = external(r#"[ -z "${RVS_CHECK_SOURCE+set}" ]"#);
        assert_eq!(run_bounded(&p), Verdict::Up);
    }

    #[test]
    fn hung_command_is_killed_with_its_children() {
        let pidfile = std::env::temp_dir().join(format!("rvs-probe-ext-{}", std::process::id()));
        let p = external(&format!("sleep 30 & echo $! > {}; wait", pidfile.display()));
        let why = down_reason(run_bounded(&p));
        assert_eq!(why, "external: timeout after 500ms, killed");

        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let _ = std::fs::remove_file(&pidfile);
        let stat = format!("/proc/{}/stat", pid.trim());
        // SIGKILL lands asynchronously; wait (bounded) for the grandchild to
        // be gone or a zombie awaiting init.
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let state = std::fs::read_to_string(&stat)
                .ok()
                .and_then(|s| s.rsplit(") ").next().and_then(|r| r.chars().next()));
            match state {
                None | Some('Z') | Some('X') => break,
                Some(s) => assert!(Instant::now() < until, "sleep still alive, state {s}"),
            }
            std::thread::yield_now();
        }
    }
}
