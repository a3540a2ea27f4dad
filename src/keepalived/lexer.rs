//! keepalived.conf's syntax: words, `{ }` blocks, `#` and `!` comments,
//! quoted strings and `include` with globs, read into a tree of
//! statements that each know their file and line.
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::glob;

/// Include files nest at most this deep: a file that includes itself is
/// an error, not a stack overflow.
const MAX_INCLUDE_DEPTH: usize = 16;
/// At most this many files are read, counting a file each time it is
/// included: includes that fan out (a glob matching files that include the
/// same glob) must end with an error, not after N^16 reads.
const MAX_FILES: usize = 1000;
/// Blocks nest at most this deep (keepalived's own grammar needs 5).
const MAX_BLOCK_DEPTH: usize = 32;

/// Where a statement is: file and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Loc {
    pub file: Arc<PathBuf>,
    pub line: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// An error in the file(s), with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub loc: Option<Loc>,
    pub message: String,
}

impl Error {
    pub fn at(loc: &Loc, message: impl Into<String>) -> Error {
        Error {
            loc: Some(loc.clone()),
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.loc {
            Some(l) => write!(f, "{l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

/// One statement: its words (keyword first) and, if it opens one, its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub loc: Loc,
    pub words: Vec<String>,
    pub block: Option<Vec<Node>>,
}

impl Node {
    pub fn keyword(&self) -> &str {
        self.words.first().map(String::as_str).unwrap_or("")
    }
    pub fn args(&self) -> &[String] {
        self.words.get(1..).unwrap_or(&[])
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Open,
    Close,
}

/// Splits one line into tokens. `{` and `}` are tokens wherever they are
/// outside quotes, as keepalived reads `url{` and `}` alike.
fn tokens(line: &str, loc: &Loc) -> Result<Vec<Tok>, Error> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    let flush = |cur: &mut String, in_word: &mut bool, out: &mut Vec<Tok>| {
        if *in_word {
            out.push(Tok::Word(std::mem::take(cur)));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' | '!' => break,
            '{' | '}' => {
                flush(&mut cur, &mut in_word, &mut out);
                out.push(if c == '{' { Tok::Open } else { Tok::Close });
            }
            '"' | '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => match chars.next() {
                            Some(e @ ('"' | '\\')) => cur.push(e),
                            Some(e) => {
                                cur.push('\\');
                                cur.push(e);
                            }
                            None => return Err(Error::at(loc, "missing terminating \" quote")),
                        },
                        Some(ch) => cur.push(ch),
                        None => {
                            return Err(Error::at(loc, format!("missing terminating {c} quote")))
                        }
                    }
                }
            }
            c if c.is_whitespace() => flush(&mut cur, &mut in_word, &mut out),
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    flush(&mut cur, &mut in_word, &mut out);
    Ok(out)
}

/// A token with its place, after includes were expanded.
struct Placed {
    tok: Tok,
    loc: Loc,
    /// First token of its line: a statement starts here.
    first: bool,
}

/// Reads a file and everything it includes into one statement tree.
/// `files` gets every file read, for the reload log; `warnings` what is
/// odd but legal (a glob that matches nothing).
pub fn read(
    path: &Path,
    files: &mut Vec<PathBuf>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Node>, Error> {
    let mut toks = Vec::new();
    read_tokens(path, None, 0, files, warnings, &mut toks)?;
    let mut it = toks.into_iter().peekable();
    let nodes = build(&mut it, 0, None)?;
    Ok(nodes)
}

fn read_tokens(
    path: &Path,
    from: Option<&Loc>,
    depth: usize,
    files: &mut Vec<PathBuf>,
    warnings: &mut Vec<String>,
    out: &mut Vec<Placed>,
) -> Result<(), Error> {
    if files.len() >= MAX_FILES {
        return Err(Error {
            loc: from.cloned(),
            message: format!("more than {MAX_FILES} files included (do files include each other?)"),
        });
    }
    let text = std::fs::read(path).map_err(|e| Error {
        loc: from.cloned(),
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    let text = String::from_utf8_lossy(&text);
    files.push(path.to_path_buf());
    let file = Arc::new(path.to_path_buf());
    for (n, line) in text.lines().enumerate() {
        let loc = Loc {
            file: file.clone(),
            line: n + 1,
        };
        let toks = tokens(line, &loc)?;
        if let Some(Tok::Word(w)) = toks.first() {
            if matches!(
                w.as_str(),
                "include" | "includer" | "includem" | "includew" | "includeb" | "includea"
            ) {
                let pattern = match &toks[1..] {
                    [Tok::Word(p)] => p,
                    _ => {
                        return Err(Error::at(
                            &loc,
                            format!("{w}: want one file name or pattern"),
                        ))
                    }
                };
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(Error::at(
                        &loc,
                        format!("{w} {pattern}: includes nest deeper than {MAX_INCLUDE_DEPTH} (does a file include itself?)"),
                    ));
                }
                // Relative to the including file's directory, as keepalived
                // does by changing into it.
                let base = path.parent().unwrap_or(Path::new("/"));
                let matches = glob::expand(base, pattern)
                    .map_err(|e| Error::at(&loc, format!("{w} {pattern}: {e}")))?;
                if matches.is_empty() {
                    if glob::has_magic(pattern) {
                        warnings.push(format!("{loc}: {w} {pattern}: no file matches"));
                        continue;
                    }
                    return Err(Error::at(&loc, format!("{w} {pattern}: no such file")));
                }
                for m in matches {
                    read_tokens(&m, Some(&loc), depth + 1, files, warnings, out)?;
                }
                continue;
            }
        }
        for (i, tok) in toks.into_iter().enumerate() {
            out.push(Placed {
                tok,
                loc: loc.clone(),
                first: i == 0,
            });
        }
    }
    Ok(())
}

/// Builds statements until the block's `}` (or the end at depth 0).
fn build(
    it: &mut std::iter::Peekable<std::vec::IntoIter<Placed>>,
    depth: usize,
    opener: Option<&Loc>,
) -> Result<Vec<Node>, Error> {
    let mut nodes: Vec<Node> = Vec::new();
    while let Some(p) = it.next() {
        match p.tok {
            Tok::Close => {
                if depth == 0 {
                    return Err(Error::at(&p.loc, "'}' without a block to close"));
                }
                return Ok(nodes);
            }
            Tok::Open => {
                // A '{' on a line of its own opens the previous statement's
                // block.
                if depth + 1 > MAX_BLOCK_DEPTH {
                    return Err(Error::at(&p.loc, "blocks nest too deep"));
                }
                let block = build(it, depth + 1, Some(&p.loc))?;
                match nodes.last_mut() {
                    Some(n) if n.block.is_none() => n.block = Some(block),
                    _ => return Err(Error::at(&p.loc, "'{' without a keyword before it")),
                }
            }
            Tok::Word(w) => {
                let mut words = vec![w];
                let loc = p.loc;
                let mut block = None;
                while let Some(next) = it.peek() {
                    if next.first || next.loc != loc {
                        break;
                    }
                    let Some(next) = it.next() else { break };
                    match next.tok {
                        Tok::Word(w) => words.push(w),
                        Tok::Open => {
                            if depth + 1 > MAX_BLOCK_DEPTH {
                                return Err(Error::at(&next.loc, "blocks nest too deep"));
                            }
                            block = Some(build(it, depth + 1, Some(&next.loc))?);
                            break;
                        }
                        Tok::Close => {
                            nodes.push(Node {
                                loc: loc.clone(),
                                words: std::mem::take(&mut words),
                                block: None,
                            });
                            if depth == 0 {
                                return Err(Error::at(&next.loc, "'}' without a block to close"));
                            }
                            return Ok(nodes);
                        }
                    }
                }
                nodes.push(Node { loc, words, block });
            }
        }
    }
    match opener {
        Some(l) => Err(Error::at(l, "this '{' is never closed")),
        None => Ok(nodes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Node>, Error> {
        let dir = std::env::temp_dir().join(format!("rvs-ka-lex-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join(format!("t{}.conf", text.len()));
        std::fs::write(&f, text).unwrap();
        read(&f, &mut Vec::new(), &mut Vec::new())
    }

    fn shape(nodes: &[Node]) -> String {
        nodes
            .iter()
            .map(|n| {
                let mut s = format!("{}@{}", n.words.join(" "), n.loc.line);
                if let Some(b) = &n.block {
                    s.push_str(&format!("[{}]", shape(b)));
                }
                s
            })
            .collect::<Vec<_>>()
            .join(";")
    }

    #[test]
    fn blocks_comments_and_quotes() {
        let t = "! comment\nvirtual_server 10.0.0.1 80 { # c\n  lb_algo rr\n  real_server 10.0.1.1 80\n  {\n    weight 2 ! x\n    MISC_CHECK { misc_path \"/bin/check a#b\" }\n  }\n}\n";
        let n = parse(t).unwrap();
        assert_eq!(
            shape(&n),
            "virtual_server 10.0.0.1 80@2[lb_algo rr@3;real_server 10.0.1.1 80@4[weight 2@6;MISC_CHECK@7[misc_path /bin/check a#b@7]]]"
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("a {\n b\n").unwrap_err();
        assert!(
            e.to_string().ends_with(":1: this '{' is never closed"),
            "{e}"
        );
        let e = parse("a\n}\n").unwrap_err();
        assert!(
            e.to_string().ends_with(":2: '}' without a block to close"),
            "{e}"
        );
        let e = parse("a \"b\n").unwrap_err();
        assert!(
            e.to_string().ends_with(":1: missing terminating \" quote"),
            "{e}"
        );
        let e = parse("x\n{\n}\n{\n}\n").unwrap_err();
        assert!(
            e.to_string()
                .ends_with(":4: '{' without a keyword before it"),
            "{e}"
        );
    }

    #[test]
    fn include_is_relative_to_the_including_file_and_globs() {
        let dir = std::env::temp_dir().join(format!("rvs-ka-lexinc-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(dir.join("conf.d/b.conf"), "b 1\n").unwrap();
        std::fs::write(dir.join("conf.d/a.conf"), "a 1\ninclude ../leaf\n").unwrap();
        std::fs::write(dir.join("conf.d/skip.txt"), "no\n").unwrap();
        std::fs::write(dir.join("leaf"), "leaf {\n}\n").unwrap();
        std::fs::write(dir.join("main.conf"), "top {\ninclude conf.d/*.conf\n}\n").unwrap();
        let mut files = Vec::new();
        let n = read(&dir.join("main.conf"), &mut files, &mut Vec::new()).unwrap();
        assert_eq!(shape(&n), "top@1[a 1@1;leaf@1[];b 1@1]");
        assert_eq!(files.len(), 4);
        std::fs::write(dir.join("self.conf"), "include self.conf\n").unwrap();
        let e = read(&dir.join("self.conf"), &mut Vec::new(), &mut Vec::new()).unwrap_err();
        assert!(e.message.contains("nest deeper"), "{e}");
        let fan = dir.join("fan");
        std::fs::create_dir_all(&fan).unwrap();
        for i in 0..1001 {
            std::fs::write(fan.join(format!("{i}.part")), "").unwrap();
        }
        std::fs::write(fan.join("main.conf"), "include *.part\n").unwrap();
        let e = read(&fan.join("main.conf"), &mut Vec::new(), &mut Vec::new()).unwrap_err();
        assert!(e.message.contains("more than 1000 files"), "{e}");
        std::fs::write(dir.join("missing.conf"), "\ninclude nothere.conf\n").unwrap();
        let e = read(&dir.join("missing.conf"), &mut Vec::new(), &mut Vec::new()).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("missing.conf:2: include nothere.conf: no such file"),
            "{e}"
        );
    }

    #[test]
    fn no_panic_on_junk() {
        for t in [
            "{",
            "}",
            "{{}}",
            "\"",
            "a { b { c",
            "a}b{",
            "\u{0}{\u{ff}",
            "'x' \"y\" {z}",
        ] {
            let _ = parse(t);
        }
    }
}
