//! The management socket's protocol: length-prefixed, versioned JSON frames.
//!
//! A request carries an ipvsadm command line exactly as typed (and stdin for
//! -R); the reply carries what ipvsadm would print and its exit status. rvsd
//! parses and executes, so one implementation of the grammar and the
//! listings serves every client. A long reply (`-Lnc` of large tables)
//! comes as several frames, each with `more` set but the last, so no
//! listing is bounded by a frame's size.
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 2;
/// Large enough for -R of tens of thousands of rules, small enough that a
/// bogus length cannot make rvsd allocate without bound.
pub const MAX_FRAME: usize = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    /// argv[0] as the user typed it ("ipvsadm" through a symlink).
    pub prog: String,
    pub args: Vec<String>,
    /// stdin, for -R.
    pub input: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub version: u32,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// More frames of this reply follow: print `stdout` and read on.
    #[serde(default)]
    pub more: bool,
}

impl Reply {
    pub fn ok(stdout: String) -> Reply {
        Reply {
            version: PROTOCOL_VERSION,
            code: 0,
            stdout,
            stderr: String::new(),
            more: false,
        }
    }

    /// A part of a long reply's stdout; the last frame has the status.
    pub fn part(stdout: String) -> Reply {
        Reply {
            more: true,
            ..Reply::ok(stdout)
        }
    }

    pub fn fail(code: i32, stderr: String) -> Reply {
        Reply {
            version: PROTOCOL_VERSION,
            code,
            stdout: String::new(),
            stderr,
            more: false,
        }
    }
}

/// The client side: one request; every part of the reply goes to `part`
/// as it arrives, and the last is returned.
pub fn request(
    path: &std::path::Path,
    req: &Request,
    mut part: impl FnMut(&Reply),
) -> io::Result<Reply> {
    let mut s = std::os::unix::net::UnixStream::connect(path)?;
    write_frame(&mut s, req)?;
    loop {
        let r: Reply = read_frame(&mut s)?;
        if !r.more {
            return Ok(r);
        }
        part(&r);
    }
}

pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    if body.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    w.write_all(&(body.len() as u32).to_be_bytes())?;
    w.write_all(&body)?;
    w.flush()
}

pub fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> io::Result<T> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {MAX_FRAME}-byte limit"),
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    serde_json::from_slice(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_frames_are_errors() {
        let req = Request {
            version: PROTOCOL_VERSION,
            prog: "ipvsadm".into(),
            args: vec!["-Ln".into()],
            input: None,
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &req).unwrap();
        assert_eq!(read_frame::<Request>(&mut buf.as_slice()).unwrap(), req);

        let huge = (MAX_FRAME as u32 + 1).to_be_bytes();
        assert!(read_frame::<Request>(&mut huge.as_slice()).is_err());
        let mut garbage = 5u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(b"{nope");
        assert!(read_frame::<Request>(&mut garbage.as_slice()).is_err());
        assert!(
            read_frame::<Request>(&mut [0u8, 0].as_slice()).is_err(),
            "truncated length"
        );
    }
}
