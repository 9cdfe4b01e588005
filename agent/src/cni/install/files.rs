//! Writing into the host's CNI directories. Every file lands by rename
//! from a temp file in the same directory: a runtime reading the conflist
//! or executing the plugin while install-cni runs sees the old file or the
//! new one, never half of one (and replacing a binary that is being
//! executed by rename avoids ETXTBSY).

use super::InstallError;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

fn at(path: &Path) -> impl Fn(std::io::Error) -> InstallError + '_ {
    move |source| InstallError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// `dir` exists (created if not) and is a directory we can write in.
pub fn ensure_dir(dir: &Path) -> Result<(), InstallError> {
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    // create_dir_all succeeds on an existing read-only directory; find out
    // now rather than halfway through the install.
    let probe = tmp_path(dir, "probe");
    std::fs::File::create(&probe).map_err(at(dir))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn tmp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.tabby-tmp.{}", std::process::id()))
}

/// Writes `contents` to `path` with `mode`, atomically.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), InstallError> {
    let (dir, name) = split(path)?;
    let tmp = tmp_path(dir, name);
    let result = (|| {
        // The mode is set at creation: a kubeconfig's token is never
        // readable by others, not even for a moment.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(at(path))
}

/// Copies the executable `from` to `to` (mode 0755), atomically.
pub fn copy_atomic(from: &Path, to: &Path) -> Result<(), InstallError> {
    let (dir, name) = split(to)?;
    let tmp = tmp_path(dir, name);
    let result = (|| {
        std::fs::copy(from, &tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, to)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|source| InstallError::Copy {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        source,
    })
}

/// `to` becomes a hard link of `existing` (same directory), atomically;
/// the IPAM plugin is the same binary under another name.
pub fn link_atomic(existing: &Path, to: &Path) -> Result<(), InstallError> {
    let (dir, name) = split(to)?;
    let tmp = tmp_path(dir, name);
    let _ = std::fs::remove_file(&tmp);
    let result = std::fs::hard_link(existing, &tmp).and_then(|()| std::fs::rename(&tmp, to));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(at(to))
}

fn split(path: &Path) -> Result<(&Path, &str), InstallError> {
    match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(d), Some(n)) => Ok((d, n)),
        _ => Err(InstallError::Write {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_written_file_replaces_the_old_one_with_its_mode_and_no_temp_left() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("kc");
        std::fs::write(&p, "old").unwrap();
        write_atomic(&p, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_link_is_the_same_file() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("tabby");
        copy_atomic(Path::new("/bin/sh"), &a).unwrap();
        let b = d.path().join("tabby-ipam");
        std::fs::write(&b, "stale").unwrap();
        link_atomic(&a, &b).unwrap();
        let (ma, mb) = (
            std::fs::metadata(&a).unwrap(),
            std::fs::metadata(&b).unwrap(),
        );
        assert_eq!(ma.ino(), mb.ino());
        assert_eq!(ma.mode() & 0o777, 0o755);
    }
}
