//! The slice of libpopt's `poptGetNextOpt` that ipvsadm relies on.
//!
//! popt is not getopt: long options need their full name (no unique-prefix
//! abbreviations), a single dash never starts a long option here, the rest
//! of a short-option cluster is the argument of an option that takes one
//! (`-t10.0.0.1:80`, `-w=3`), an optional argument (`-p`) is taken from the
//! next word unless that word starts with '-', and words that are not
//! options are kept aside as leftovers wherever they appear (so
//! `--set 900 120 300` and `900 --set 120 300` are the same). Behaviour
//! follows popt 1.19's popt.c, the version Debian builds ipvsadm with.

/// Whether an option takes an argument (popt's ARG_NONE, ARG_STRING and
/// ARG_STRING|ARGFLAG_OPTIONAL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arg {
    None,
    Required,
    Optional,
}

/// One entry of an option table: `long` is "" and `short` is '\0' where the
/// option has no such name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec<T> {
    pub long: &'static str,
    pub short: char,
    pub arg: Arg,
    pub tag: T,
}

/// popt's POPT_ERROR_* that ipvsadm can meet, with poptStrerror's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PoptError {
    NoArg,
    BadOpt,
    UnwantedArg,
}

impl PoptError {
    pub fn text(self) -> &'static str {
        match self {
            PoptError::NoArg => "missing argument",
            PoptError::BadOpt => "unknown option",
            PoptError::UnwantedArg => "option does not take an argument",
        }
    }
}

/// A popt context over one argv (without argv[0]).
pub(crate) struct Popt<'a> {
    args: &'a [String],
    next: usize,
    /// The unread rest of a short-option cluster.
    cluster: Option<&'a str>,
    /// Set by "--": every later word is a leftover.
    rest_leftover: bool,
    leftovers: Vec<&'a str>,
    next_leftover: usize,
}

impl<'a> Popt<'a> {
    pub fn new(args: &'a [String]) -> Popt<'a> {
        Popt {
            args,
            next: 0,
            cluster: None,
            rest_leftover: false,
            leftovers: Vec::new(),
            next_leftover: 0,
        }
    }

    /// The next option and its argument; None at the end of argv. `find`
    /// looks a name up: `Ok(long)` or `Err(short)`.
    pub fn next_opt<T: Copy>(
        &mut self,
        find: impl Fn(Result<&str, char>) -> Option<Spec<T>>,
    ) -> Result<Option<(T, Option<&'a str>)>, PoptError> {
        loop {
            let mut long_arg: Option<&'a str> = None;
            let mut spec = None;
            if self.cluster.is_none() {
                let Some(word) = self.args.get(self.next) else {
                    return Ok(None);
                };
                self.next += 1;
                let word = word.as_str();
                if self.rest_leftover || !word.starts_with('-') || word == "-" {
                    self.leftovers.push(word);
                    continue;
                }
                if word == "--" {
                    self.rest_leftover = true;
                    continue;
                }
                if let Some(body) = word.strip_prefix("--") {
                    let (name, value) = match body.split_once('=') {
                        Some((n, v)) => (n, Some(v)),
                        None => (body, None),
                    };
                    spec = Some(find(Ok(name)).ok_or(PoptError::BadOpt)?);
                    long_arg = value;
                } else {
                    // No option of ipvsadm's is ONEDASH, so "-name" is
                    // always a cluster of short options.
                    self.cluster = word.get(1..);
                }
            }
            let spec = match spec {
                Some(s) => s,
                None => {
                    let rest = self.cluster.take().unwrap_or("");
                    let mut chars = rest.chars();
                    let c = chars.next().ok_or(PoptError::BadOpt)?;
                    let s = find(Err(c)).ok_or(PoptError::BadOpt)?;
                    let after = chars.as_str();
                    if !after.is_empty() {
                        self.cluster = Some(after);
                    }
                    s
                }
            };
            let value = match spec.arg {
                Arg::None => {
                    if long_arg.is_some() || self.cluster.is_some_and(|c| c.starts_with('=')) {
                        return Err(PoptError::UnwantedArg);
                    }
                    None
                }
                Arg::Required | Arg::Optional => {
                    if long_arg.is_some() {
                        long_arg
                    } else if let Some(rest) = self.cluster.take() {
                        Some(rest.strip_prefix('=').unwrap_or(rest))
                    } else {
                        match self.args.get(self.next) {
                            None if spec.arg == Arg::Optional => None,
                            None => return Err(PoptError::NoArg),
                            Some(w) if spec.arg == Arg::Optional && w.starts_with('-') => None,
                            Some(w) => {
                                self.next += 1;
                                Some(w.as_str())
                            }
                        }
                    }
                }
            };
            return Ok(Some((spec.tag, value)));
        }
    }

    /// poptBadOption(POPT_BADOPTION_NOALIAS): the last argv word read,
    /// which is an option's argument when the option took one from the
    /// next word.
    pub fn bad_option(&self) -> &'a str {
        self.next
            .checked_sub(1)
            .and_then(|i| self.args.get(i))
            .map_or("", String::as_str)
    }

    /// poptGetArg: the leftovers, in order, after the options are read.
    pub fn next_arg(&mut self) -> Option<&'a str> {
        let a = self.leftovers.get(self.next_leftover).copied();
        if a.is_some() {
            self.next_leftover += 1;
        }
        a
    }
}
