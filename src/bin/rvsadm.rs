//! rvsadm: the management client, with ipvsadm 1.31's grammar and output.
//! `ln -s rvsadm ipvsadm` makes it a drop-in: it sends the command line to
//! rvsd over the management socket and prints what comes back.
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

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
    // Help and version need no rvsd.
    match rvs::ctl::parse_as(&prog, &args) {
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
    // -R reads its rules from stdin; rvsd applies them all or none.
    let restore = args.first().is_some_and(|a| a == "-R" || a == "--restore");
    let input = if restore {
        let mut s = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut s) {
            eprintln!("{prog}: cannot read rules from stdin: {e}");
            return ExitCode::from(2);
        }
        Some(s)
    } else {
        None
    };
    let req = Request {
        version: PROTOCOL_VERSION,
        prog: prog.clone(),
        args,
        input,
    };
    match request(&path, &req) {
        Ok(reply) => {
            let _ = std::io::stdout().write_all(reply.stdout.as_bytes());
            let _ = std::io::stderr().write_all(reply.stderr.as_bytes());
            ExitCode::from(reply.code as u8)
        }
        Err(e) => {
            eprintln!(
                "{prog}: cannot reach rvsd at {}: {e} (is rvsd running?)",
                path.display()
            );
            ExitCode::from(2)
        }
    }
}
