//! The part of glob(3) keepalived's `include` uses: `*`, `?`, `[...]`
//! within one path component, and csh braces `{a,b}` (GLOB_BRACE), with
//! matches sorted and hidden files matched only by a leading dot.
use std::path::{Path, PathBuf};

/// Braces nest at most this deep and expand to at most this many
/// patterns: a config file cannot make us build millions of them.
const MAX_PATTERNS: usize = 1024;

pub fn has_magic(p: &str) -> bool {
    p.contains(['*', '?', '[', '{'])
}

/// The files `pattern` names, relative to `base` unless absolute.
pub fn expand(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in braces(pattern)? {
        let full = if p.starts_with('/') {
            PathBuf::from(&p)
        } else {
            base.join(&p)
        };
        let mut found = Vec::new();
        walk(&full, &mut found);
        found.sort();
        out.extend(found);
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

/// Every existing path matching `pattern` component by component.
fn walk(pattern: &Path, out: &mut Vec<PathBuf>) {
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
            return;
        }
    }
    out.extend(paths.into_iter().filter(|p| p.is_file()));
}

/// Shell wildcard match of one name.
fn fnmatch(pat: &[u8], name: &[u8]) -> bool {
    match pat.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| fnmatch(rest, &name[i..])),
        Some((b'?', rest)) => !name.is_empty() && fnmatch(rest, &name[1..]),
        Some((b'[', rest)) => {
            let Some((&c, name_rest)) = name.split_first() else {
                return false;
            };
            let (negate, body) = match rest.first() {
                Some(b'!' | b'^') => (true, &rest[1..]),
                _ => (false, rest),
            };
            // A ']' first in the class is a member, not its end.
            let Some(end) = body.iter().skip(1).position(|&b| b == b']').map(|i| i + 1) else {
                return c == b'[' && fnmatch(rest, name_rest);
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
            hit != negate && fnmatch(&body[end + 1..], name_rest)
        }
        Some((&p, rest)) => name.first() == Some(&p) && fnmatch(rest, &name[1..]),
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
    }

    #[test]
    fn brace_expansion() {
        assert_eq!(braces("a{b,c{d,e}}f").unwrap(), ["abf", "acdf", "acef"]);
        assert_eq!(braces("x").unwrap(), ["x"]);
        assert!(braces("a{b").is_err());
        assert!(braces(&"{a,b}".repeat(12)).is_err());
    }
}
