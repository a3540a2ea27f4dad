//! The rules file kept in step with the table (`[ctl] persist`): every
//! accepted change is written there before its reply goes out, so a
//! SIGKILL or a power cut loses no configuration, and the next start
//! applies the file as it applies any `[ctl] rules` file.
//!
//! A write is a new file beside the old one, fsynced, renamed over it and
//! the directory fsynced: a reader (or the next start) sees the old rules
//! or the new ones, never half of either.
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub struct RulesFile {
    path: PathBuf,
    /// What the file holds now; a change that saves the same text (a
    /// health transition, a `-Z`) costs no write.
    written: Option<String>,
}

impl RulesFile {
    pub fn new(path: PathBuf) -> RulesFile {
        RulesFile {
            path,
            written: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `text` unless the file already holds it. Ok(true): written.
    pub fn save(&mut self, text: &str) -> io::Result<bool> {
        if self.written.as_deref() == Some(text) {
            return Ok(false);
        }
        write_atomically(&self.path, text.as_bytes())?;
        self.written = Some(text.to_owned());
        Ok(true)
    }
}

/// The temporary file's name: hidden, beside the target (a rename only
/// replaces atomically within one file system), and per process so two
/// writers never share one.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path);
    let written = (|| {
        // 0600: the rules name every real server; like the management
        // socket, they are the operator's alone.
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename itself is durable only once the directory is.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rvs-persist-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_save_replaces_the_file_whole_and_leaves_no_temporary_behind() {
        let d = scratch("replace");
        let path = d.join("rules");
        fs::write(
            &path,
            "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1\n",
        )
        .unwrap();
        let mut f = RulesFile::new(path.clone());
        assert!(f.save("-A -u 10.0.0.2:53 -s wlc\n").unwrap());
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "-A -u 10.0.0.2:53 -s wlc\n"
        );
        let names: Vec<String> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["rules"]);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_same_text_twice_is_written_once() {
        let d = scratch("same");
        let path = d.join("rules");
        let mut f = RulesFile::new(path.clone());
        assert!(f.save("-A -t 10.0.0.1:80 -s rr\n").unwrap());
        // Someone else's edit in between is not ours to undo until our
        // table changes again.
        fs::write(&path, "edited\n").unwrap();
        assert!(!f.save("-A -t 10.0.0.1:80 -s rr\n").unwrap());
        assert_eq!(fs::read_to_string(&path).unwrap(), "edited\n");
        assert!(f.save("").unwrap());
        assert_eq!(fs::read_to_string(&path).unwrap(), "");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_says_why() {
        let d = scratch("fail");
        let path = d.join("missing-dir").join("rules");
        let mut f = RulesFile::new(path.clone());
        let e = f.save("-A -t 10.0.0.1:80 -s rr\n").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        // Not remembered as written: the next change tries again.
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        assert!(f.save("-A -t 10.0.0.1:80 -s rr\n").unwrap());
        fs::remove_dir_all(&d).unwrap();
    }
}
