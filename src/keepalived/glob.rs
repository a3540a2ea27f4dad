//! The part of glob(3) keepalived's `include` uses: `*`, `?`, `[...]`
//! within one path component, and csh braces `{a,b}` (GLOB_BRACE), with
//! matches sorted and hidden files matched only by a leading dot.
use std::path::{Path, PathBuf};

/// Braces expand to at most this many patterns, and a pattern matches at
/// most this many paths: a config file cannot make us build millions.
const MAX_PATTERNS: usize = 1024;
/// A pattern's length and brace groups at most: brace expansion recurses
/// once per group, and a reload runs on rvsd's control thread.
const MAX_PATTERN_LEN: usize = 4096;
const MAX_BRACES: usize = 32;

pub fn has_magic(p: &str) -> bool {
    p.contains(['*', '?', '[', '{'])
}

/// The files `pattern` names, relative to `base` unless absolute.
pub fn expand(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(format!("a pattern longer than {MAX_PATTERN_LEN} bytes"));
    }
    if pattern.matches('{').count() > MAX_BRACES {
        return Err(format!("more than {MAX_BRACES} brace groups"));
    }
    let mut out = Vec::new();
    for p in braces(pattern)? {
        let full = if p.starts_with('/') {
            PathBuf::from(&p)
        } else {
            base.join(&p)
        };
        let mut found = walk(&full)?;
        found.sort();
        out.extend(found);
        if out.len() > MAX_PATTERNS {
            return Err(format!("matches more than {MAX_PATTERNS} files"));
        }
    }
    Ok(out)
}

/// `a{b,c}d` → `abd`, `acd`; nested braces too.
fn braces(p: &str) -> Result<Vec<String>, String> {
    let Some(open) = p.find('{') else {
        return Ok(vec![p.to_string()]);
    };
    let mut depth = 0;
    let mut close = None;
    let mut commas = Vec::new();
    for (i, c) in p[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            ',' if depth == 1 => commas.push(open + i),
            _ => {}
        }
    }
    let close = close.ok_or("unbalanced '{' in the pattern")?;
    let mut cuts = vec![open];
    cuts.extend(commas);
    cuts.push(close);
    let (head, tail) = (&p[..open], &p[close + 1..]);
    let mut out = Vec::new();
    for w in cuts.windows(2) {
        let alt = &p[w[0] + 1..w[1]];
        for e in braces(&format!("{head}{alt}{tail}"))? {
            out.push(e);
            if out.len() > MAX_PATTERNS {
                return Err(format!(
                    "braces expand to more than {MAX_PATTERNS} patterns"
                ));
            }
        }
    }
    Ok(out)
}

/// Every existing path matching `pattern` component by component; more
/// than [`MAX_PATTERNS`] at any step is an error, never a silent cut (a
/// reload would delete the services of the files left out).
fn walk(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let mut paths = vec![PathBuf::new()];
    for comp in pattern.components() {
        let s = comp.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        for p in &paths {
            if !has_magic(&s) {
                next.push(p.join(comp.as_os_str()));
                continue;
            }
            let dir = if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            };
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') && !s.starts_with('.') {
                    continue;
                }
                if fnmatch(s.as_bytes(), name.as_bytes()) {
                    next.push(p.join(&name));
                }
            }
        }
        paths = next;
        if paths.len() > MAX_PATTERNS {
            return Err(format!("matches more than {MAX_PATTERNS} paths"));
        }
    }
    Ok(paths.into_iter().filter(|p| p.is_file()).collect())
}

/// Shell wildcard match of one name, in time linear in the name for each
/// star: on a mismatch only the last star takes one more byte (a pattern
/// of many stars cannot make it backtrack exponentially).
fn fnmatch(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Where to resume after the last star: pattern after it, name there.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if pat.get(p) == Some(&b'*') {
            p += 1;
            star = Some((p, n));
            continue;
        }
        if let Some(next) = one(pat, p, name[n]) {
            p = next;
            n += 1;
            continue;
        }
        match star {
            Some((sp, sn)) => {
                p = sp;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    pat[p.min(pat.len())..].iter().all(|&b| b == b'*')
}

/// Whether the pattern element at `p` (a byte, `?` or a `[...]` class)
/// matches `c`; the index after the element if it does.
fn one(pat: &[u8], p: usize, c: u8) -> Option<usize> {
    match *pat.get(p)? {
        b'?' => Some(p + 1),
        b'[' => {
            let rest = &pat[p + 1..];
            let (negate, skip) = match rest.first() {
                Some(b'!' | b'^') => (true, 1),
                _ => (false, 0),
            };
            let body = &rest[skip..];
            // A ']' first in the class is a member, not its end.
            let Some(end) = body.iter().skip(1).position(|&b| b == b']').map(|i| i + 1) else {
                // No end: a literal '['.
                return (c == b'[').then_some(p + 1);
            };
            let class = &body[..end];
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= (class[i]..=class[i + 2]).contains(&c);
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            (hit != negate).then_some(p + 1 + skip + end + 1)
        }
        b => (b == c).then_some(p + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(fnmatch(b"*.conf", b"a.conf"));
        assert!(!fnmatch(b"*.conf", b"a.conf~"));
        assert!(fnmatch(b"rs?.c", b"rs1.c"));
        assert!(fnmatch(b"rs[0-9].c", b"rs7.c"));
        assert!(!fnmatch(b"rs[!0-9].c", b"rs7.c"));
        assert!(fnmatch(b"[]]", b"]"));
        assert!(!fnmatch(b"[ab", b"a"));
        assert!(fnmatch(b"[ab", b"[ab"));
        assert!(fnmatch(b"a*b*c", b"axxbyyc"));
        assert!(!fnmatch(b"a*b*c", b"axxbyy"));
        assert!(fnmatch(b"*", b""));
        assert!(fnmatch(b"**x**", b"abx"));
        // Many stars against a long name that fails only at its end: the
        // old recursive match took minutes here.
        let name = vec![b'a'; 4000];
        assert!(!fnmatch(
            &[b'*'; 40].iter().chain(b"z").copied().collect::<Vec<u8>>(),
            &name
        ));
    }

    #[test]
    fn patterns_that_would_blow_up_are_refused() {
        let base = Path::new("/");
        let nested = format!("{}a{}", "{".repeat(20_000), "}".repeat(20_000));
        assert!(expand(base, &nested).unwrap_err().contains("longer than"));
        let groups = "{a,b}".repeat(40);
        assert!(expand(base, &groups).unwrap_err().contains("brace groups"));
    }

    #[test]
    fn too_many_matches_is_an_error_not_a_cut() {
        let dir = std::env::temp_dir().join(format!("rvs-glob-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..=MAX_PATTERNS {
            std::fs::write(dir.join(format!("{i}.conf")), "").unwrap();
        }
        let e = expand(&dir, "*.conf").unwrap_err();
        assert!(e.contains("more than 1024"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn brace_expansion() {
        assert_eq!(braces("a{b,c{d,e}}f").unwrap(), ["abf", "acdf", "acef"]);
        assert_eq!(braces("x").unwrap(), ["x"]);
        assert!(braces("a{b").is_err());
        assert!(braces(&"{a,b}".repeat(12)).is_err());
    }
}
