//! rvsd: the rvs daemon.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "rvsd",
    about = "rvs: a DPDK L4 load balancer that does what Linux IPVS does",
    disable_version_flag = true
)]
struct Args {
    /// Run with this configuration file (TOML; see conf/rvsd.toml).
    #[arg(long, value_name = "FILE", conflicts_with = "check_config")]
    config: Option<PathBuf>,
    /// Validate a configuration file, print every error with its key, and exit.
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
    /// Apply this keepalived.conf's LVS part at start and on SIGHUP
    /// (overrides [keepalived] config).
    #[arg(long, value_name = "FILE")]
    keepalived: Option<PathBuf>,
    /// Print version, git revision and DPDK version.
    #[arg(short = 'V', long)]
    version: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.version {
        println!("{}", rvs::version::long("rvsd"));
        return ExitCode::SUCCESS;
    }
    if let Some(path) = args.check_config {
        return match rvs::config::Config::load(&path) {
            Ok(mut cfg) => {
                if let Some(k) = args.keepalived {
                    cfg.keepalived.config = Some(k);
                }
                if let Some(k) = &cfg.keepalived.config {
                    // The file alone, as if the table were empty.
                    match rvs::keepalived::check(k) {
                        Ok((n, warnings)) => {
                            for w in warnings {
                                eprintln!("rvsd: keepalived: warning: {w}");
                            }
                            println!(
                                "{}: keepalived configuration OK ({n} service(s))",
                                k.display()
                            )
                        }
                        Err(e) => {
                            eprintln!("rvsd: keepalived: {e}");
                            return ExitCode::from(1);
                        }
                    }
                }
                println!(
                    "{}: configuration OK ({} port(s), {} worker(s), {} route(s))",
                    path.display(),
                    cfg.ports.len(),
                    cfg.dataplane.workers.len(),
                    cfg.routes.len()
                );
                ExitCode::SUCCESS
            }
            Err(errs) => {
                for e in &errs.0 {
                    eprintln!("rvsd: {}: {e}", path.display());
                }
                ExitCode::from(1)
            }
        };
    }
    let Some(path) = args.config else {
        eprintln!(
            "rvsd: give --config FILE to run, or --check-config FILE to validate (see --help)"
        );
        return ExitCode::from(2);
    };
    let mut cfg = match rvs::config::Config::load(&path) {
        Ok(c) => c,
        Err(errs) => {
            for e in &errs.0 {
                eprintln!("rvsd: {}: {e}", path.display());
            }
            return ExitCode::from(1);
        }
    };
    if let Some(k) = args.keepalived {
        cfg.keepalived.config = Some(k);
    }
    match rvs::daemon::run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvsd: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
