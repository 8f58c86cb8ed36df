//! Whether the store instance that owns a run is still alive, on SQLite.
//!
//! PostgreSQL answers this with a session advisory lock per instance (see `runs.rs`). A SQLite
//! file has no sessions, so each instance that starts a run locks a file of its own beside the
//! database, `<database file>.owner-<owner>.lock`, with an exclusive `flock`, and keeps it
//! locked for as long as it lives; the operating system drops the lock when the process dies,
//! however it dies. Another instance that finds a run still `running` tries to take its owner's
//! lock: if it can (or the file is not there), the owner is gone. The file is removed by its
//! instance when it closes, and by whoever finds it unlocked.
//!
//! This holds for processes on one host, which is what a SQLite file is for. An in-memory
//! database has no file, and no other process can open it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use tracing::warn;

/// The locked file of a live store instance; unlocked and removed when dropped.
#[derive(Debug)]
pub(crate) struct OwnerLock {
    path: PathBuf,
    /// Held only for its lock, which closing the file releases.
    _file: File,
}

impl OwnerLock {
    /// Creates and locks the file of `owner` beside `database`.
    pub(crate) fn acquire(database: &Path, owner: i64) -> std::io::Result<OwnerLock> {
        let path = lock_path(database, owner);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        // Owner ids are random per instance, so nobody else locks this file while we live.
        file.try_lock().map_err(std::io::Error::from)?;
        Ok(OwnerLock { path, _file: file })
    }
}

impl Drop for OwnerLock {
    fn drop(&mut self) {
        // The lock goes with the file handle; the file itself is only tidied away.
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != ErrorKind::NotFound {
                warn!(path = %self.path.display(), error = %e, "could not remove a run lock file");
            }
        }
    }
}

/// Whether the instance `owner` of the SQLite file `database` is alive: its lock file is locked
/// by someone. A file that cannot be opened for another reason than its absence counts as
/// alive, so that a reader errs on the side of waiting (the age bound on runs still applies).
pub(crate) fn is_alive(database: &Path, owner: i64) -> bool {
    let path = lock_path(database, owner);
    // Read access is enough for `flock`, so a reader that may not write the file can still tell.
    let file = match OpenOptions::new().read(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return false,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot read a run lock file; assuming its owner is alive");
            return true;
        }
    };
    match file.try_lock() {
        Ok(()) => {
            // Nobody held it: the owner is gone, and its file with it.
            let _ = std::fs::remove_file(&path);
            false
        }
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(e)) => {
            warn!(path = %path.display(), error = %e, "cannot lock a run lock file; assuming its owner is alive");
            true
        }
    }
}

fn lock_path(database: &Path, owner: i64) -> PathBuf {
    let mut path = database.as_os_str().to_owned();
    path.push(format!(".owner-{owner}.lock"));
    PathBuf::from(path)
}
