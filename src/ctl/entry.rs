//! The names rvsadm answers to. Installed as `ipvsadm` it is ipvsadm; as
//! `ipvsadm-save` and `ipvsadm-restore` it does what ipvsadm 1.31's two
//! shell scripts of those names do, so init scripts and keepalived setups
//! that call them keep working when the Debian package puts rvsadm behind
//! those names (update-alternatives).
//!
//! The scripts, exactly:
//! - ipvsadm-save: every argument `-n` asks for numeric output, any other
//!   argument starting with '-' prints a two-line help on stderr and exits
//!   1, other arguments are ignored; then `ipvsadm -S [-n]`.
//! - ipvsadm-restore: reads all of stdin and drops the lines starting with
//!   '#' (`grep -v '^#'`), runs `ipvsadm -C`, then feeds what is left to
//!   `ipvsadm -R`; arguments are ignored and the exit status is -R's. The
//!   clear and the restore are two steps, as in the script: a failed -R
//!   (which rvs applies all or none) leaves the table empty.

/// What one request gets on its stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    None,
    /// All of rvsadm's stdin (`-R`).
    Stdin,
    /// rvsadm's stdin less the lines ipvsadm-restore's grep drops.
    Uncommented,
}

/// One request to rvsd: an ipvsadm command line and its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub args: Vec<String>,
    pub input: Input,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Requests sent in turn under the program name `prog` (which rvsd's
    /// messages name); the last one's exit status is rvsadm's.
    Run { prog: String, calls: Vec<Call> },
    /// ipvsadm-save's help: this on stderr and exit status 1.
    Usage(String),
}

pub const SAVE: &str = "ipvsadm-save";
pub const RESTORE: &str = "ipvsadm-restore";

fn call(args: &[&str], input: Input) -> Call {
    Call {
        args: args.iter().map(|a| a.to_string()).collect(),
        input,
    }
}

/// What rvsadm does when invoked as `prog` (argv[0]'s file name) with
/// `args` (argv[1..], rvsadm's own `--socket` already taken out).
pub fn entry(prog: &str, args: Vec<String>) -> Entry {
    match prog {
        SAVE => {
            let mut numeric = false;
            for a in &args {
                if a == "-n" {
                    numeric = true;
                } else if a.starts_with('-') {
                    return Entry::Usage(format!(
                        "{prog}: Script to save the IPVS table to stdout.\n   With the -n option, prints out the table in numeric format.\n"
                    ));
                }
            }
            let save: &[&str] = if numeric { &["-S", "-n"] } else { &["-S"] };
            Entry::Run {
                prog: super::PROGRAM.into(),
                calls: vec![call(save, Input::None)],
            }
        }
        RESTORE => Entry::Run {
            prog: super::PROGRAM.into(),
            calls: vec![
                call(&["-C"], Input::None),
                call(&["-R"], Input::Uncommented),
            ],
        },
        _ => {
            let restore = args.first().is_some_and(|a| a == "-R" || a == "--restore");
            Entry::Run {
                prog: prog.into(),
                calls: vec![Call {
                    args,
                    input: if restore { Input::Stdin } else { Input::None },
                }],
            }
        }
    }
}

/// `echo "$(grep -v '^#')"`: the lines not starting with '#', trailing
/// newlines dropped by the command substitution, one added by echo.
pub fn uncommented(input: &str) -> String {
    let kept: Vec<&str> = input
        .split_terminator('\n')
        .filter(|l| !l.starts_with('#'))
        .collect();
    let mut s = kept.join("\n").trim_end_matches('\n').to_string();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn run(prog: &str, calls: Vec<Call>) -> Entry {
        Entry::Run {
            prog: prog.into(),
            calls,
        }
    }

    #[test]
    fn as_rvsadm_or_ipvsadm_the_command_line_goes_through() {
        assert_eq!(
            entry("rvsadm", args(&["-Ln"])),
            run("rvsadm", vec![call(&["-Ln"], Input::None)])
        );
        assert_eq!(
            entry("ipvsadm", args(&["-R"])),
            run("ipvsadm", vec![call(&["-R"], Input::Stdin)])
        );
        assert_eq!(
            entry("ipvsadm", args(&["--restore"])),
            run("ipvsadm", vec![call(&["--restore"], Input::Stdin)])
        );
        assert_eq!(
            entry("ipvsadm", vec![]),
            run("ipvsadm", vec![call(&[], Input::None)])
        );
    }

    #[test]
    fn ipvsadm_save_is_dash_s_with_its_numeric_flag() {
        let save = |a: &[&str]| entry(SAVE, args(a));
        assert_eq!(save(&[]), run("ipvsadm", vec![call(&["-S"], Input::None)]));
        let numeric = run("ipvsadm", vec![call(&["-S", "-n"], Input::None)]);
        assert_eq!(save(&["-n"]), numeric);
        assert_eq!(save(&["-n", "-n"]), numeric);
        // The script's case ignores words that are not options.
        assert_eq!(save(&["rules", "-n"]), numeric);
    }

    #[test]
    fn ipvsadm_save_with_another_option_prints_its_help() {
        let help = "ipvsadm-save: Script to save the IPVS table to stdout.\n   With the -n option, prints out the table in numeric format.\n";
        for a in [&["-h"][..], &["-n", "-S"], &["--numeric"], &["-"]] {
            assert_eq!(entry(SAVE, args(a)), Entry::Usage(help.into()), "{a:?}");
        }
    }

    #[test]
    fn ipvsadm_restore_clears_then_restores_and_ignores_its_arguments() {
        let want = run(
            "ipvsadm",
            vec![
                call(&["-C"], Input::None),
                call(&["-R"], Input::Uncommented),
            ],
        );
        assert_eq!(entry(RESTORE, vec![]), want);
        assert_eq!(entry(RESTORE, args(&["-n", "x"])), want);
    }

    #[test]
    fn restore_input_loses_comment_lines_as_grep_and_echo_leave_it() {
        assert_eq!(
            uncommented(
                "# saved\n-A -t 1.2.3.4:80 -s rr\n #kept\n\n-a -t 1.2.3.4:80 -r 5.6.7.8:80\n\n\n"
            ),
            "-A -t 1.2.3.4:80 -s rr\n #kept\n\n-a -t 1.2.3.4:80 -r 5.6.7.8:80\n"
        );
        assert_eq!(uncommented("-C"), "-C\n");
        assert_eq!(uncommented(""), "\n");
        assert_eq!(uncommented("#only\n"), "\n");
    }
}
