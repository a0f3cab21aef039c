//! `install DIR`: the init container copies this program into the volume it shares with
//! the application container.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The file name the program is installed under; the webhook's rewritten command runs
/// `DIR/agyn-secrets exec -- ...`.
pub const INSTALLED_NAME: &str = "agyn-secrets";

/// Why the program could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(
        "cannot find this program's own file (/proc/self/exe, the executable path and argv[0] all failed): {0}"
    )]
    NoSelf(io::Error),
    #[error("{dir} is not a directory; mount the shared volume there")]
    NotADirectory { dir: PathBuf },
    #[error("cannot use {dir}: {source}")]
    Directory { dir: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// Copies this program to `dir/agyn-secrets`, mode 0555, atomically: the bytes go to a
/// temporary name in `dir` first and are renamed into place, so that the file is never
/// seen half written. Returns the installed path.
pub fn install(dir: &Path) -> Result<PathBuf, InstallError> {
    let metadata = fs::metadata(dir).map_err(|source| InstallError::Directory {
        dir: dir.to_owned(),
        source,
    })?;
    if !metadata.is_dir() {
        return Err(InstallError::NotADirectory {
            dir: dir.to_owned(),
        });
    }
    let mut source = open_self().map_err(InstallError::NoSelf)?;
    let target = dir.join(INSTALLED_NAME);
    let temporary = dir.join(format!(".{INSTALLED_NAME}.{}.tmp", std::process::id()));
    let write = |source: &mut File| -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o700)
            .open(&temporary)?;
        io::copy(source, &mut file)?;
        // Set after writing and regardless of the umask: read and execute for everyone,
        // write for no one, so the application cannot alter what the next start runs.
        file.set_permissions(Permissions::from_mode(0o555))?;
        file.sync_all()?;
        fs::rename(&temporary, &target)
    };
    write(&mut source).map_err(|error| {
        let _ = fs::remove_file(&temporary);
        InstallError::Write {
            path: target.clone(),
            source: error,
        }
    })?;
    Ok(target)
}

/// Opens this program's own file: `/proc/self/exe` where `/proc` is mounted, else the
/// path the standard library finds, else `argv[0]` when it is a path (a chroot without
/// `/proc`).
fn open_self() -> io::Result<File> {
    File::open("/proc/self/exe")
        .or_else(|_| std::env::current_exe().and_then(File::open))
        .or_else(
            |error| match std::env::args_os().next().map(PathBuf::from) {
                Some(path) if path.components().count() > 1 => File::open(path),
                _ => Err(error),
            },
        )
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn installs_a_read_only_executable_copy_of_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = install(dir.path()).unwrap();
        assert_eq!(path, dir.path().join(INSTALLED_NAME));
        let me = fs::read("/proc/self/exe").unwrap();
        assert_eq!(fs::read(&path).unwrap(), me);
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o555);
        // A second run (a restarted init container) replaces the file in place.
        install(dir.path()).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [INSTALLED_NAME]);
    }

    #[test]
    fn explains_a_missing_or_wrong_directory() {
        let dir = tempfile::tempdir().unwrap();
        let missing = install(&dir.path().join("absent")).unwrap_err().to_string();
        assert!(missing.starts_with("cannot use "), "{missing}");
        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        let not_dir = install(&file).unwrap_err().to_string();
        assert!(not_dir.contains("is not a directory"), "{not_dir}");
    }
}
