//! rvsadm: the management client, with ipvsadm 1.31's grammar.
//!
//! The management socket and the ipvsadm grammar come with the management
//! issue; until then rvsadm answers --version and says what it cannot do yet.
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("-v") | Some("--version") | Some("-V") => {
            println!("{}", rvs::version::long("rvsadm"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "rvsadm: this build of rvs has no management socket yet; only --version works"
            );
            ExitCode::from(2)
        }
    }
}
