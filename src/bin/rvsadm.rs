//! rvsadm: the management client, with ipvsadm 1.31's grammar and output.
//! `ln -s rvsadm ipvsadm` makes it a drop-in: it sends the command line to
//! rvsd over the management socket and prints what comes back. Called
//! `ipvsadm-save` or `ipvsadm-restore` it behaves as those scripts do
//! (rvs::ctl::entry).
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use rvs::ctl::entry::{entry, uncommented, Entry, Input};
use rvs::ctl::frame::{request, Request, PROTOCOL_VERSION};

/// The socket: `--socket PATH` (rvs-only, removed before parsing), then
/// RVS_SOCKET, then rvsd's default.
fn socket_path(args: &mut Vec<String>) -> PathBuf {
    if let Some(i) = args
        .iter()
        .position(|a| a == "--socket" || a.starts_with("--socket="))
    {
        let a = args.remove(i);
        if let Some(v) = a.strip_prefix("--socket=") {
            return PathBuf::from(v);
        }
        if i < args.len() {
            return PathBuf::from(args.remove(i));
        }
    }
    std::env::var_os("RVS_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(rvs::config::DEFAULT_CTL_SOCKET))
}

fn main() -> ExitCode {
    let mut argv = std::env::args();
    let prog = argv
        .next()
        .map(|p| p.rsplit('/').next().unwrap_or("rvsadm").to_owned())
        .unwrap_or_else(|| "rvsadm".into());
    let mut args: Vec<String> = argv.collect();
    let path = socket_path(&mut args);
    let (prog, calls) = match entry(&prog, args) {
        Entry::Usage(help) => {
            eprint!("{help}");
            return ExitCode::from(1);
        }
        Entry::Run { prog, calls } => (prog, calls),
    };
    // Help and version need no rvsd.
    if let [only] = &calls[..] {
        match rvs::ctl::parse_as(&prog, &only.args) {
            Ok(rvs::ctl::Command::Help) => {
                print!("{}", rvs::ctl::usage::usage(&prog));
                return ExitCode::SUCCESS;
            }
            Ok(rvs::ctl::Command::Version) => {
                println!("{}", rvs::ctl::usage::VERSION_LINE);
                return ExitCode::SUCCESS;
            }
            _ => {}
        }
    }
    // All of stdin is read before the first request, as ipvsadm-restore's
    // grep reads it before its `ipvsadm -C`.
    let stdin = if calls.iter().any(|c| c.input != Input::None) {
        let mut s = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut s) {
            eprintln!("{prog}: cannot read rules from stdin: {e}");
            return ExitCode::from(2);
        }
        s
    } else {
        String::new()
    };
    let mut code = 0;
    for c in calls {
        let input = match c.input {
            Input::None => None,
            Input::Stdin => Some(stdin.clone()),
            Input::Uncommented => Some(uncommented(&stdin)),
        };
        let req = Request {
            version: PROTOCOL_VERSION,
            prog: prog.clone(),
            args: c.args,
            input,
        };
        let part = |r: &rvs::ctl::frame::Reply| {
            let _ = std::io::stdout().write_all(r.stdout.as_bytes());
        };
        match request(&path, &req, part) {
            Ok(reply) => {
                let _ = std::io::stdout().write_all(reply.stdout.as_bytes());
                let _ = std::io::stderr().write_all(reply.stderr.as_bytes());
                code = reply.code;
            }
            Err(e) => {
                eprintln!(
                    "{prog}: cannot reach rvsd at {}: {e} (is rvsd running?)",
                    path.display()
                );
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::from(code as u8)
}
