//! Folder locks: an exclusive advisory lock on a file inside a folder, held for the life of the
//! process (the OS drops it if the process dies), so two processes never write into one run or
//! one study.

use npe_core::error::Result;
use std::path::Path;

/// Lock `dir/name` (creating `dir`), or say who holds it with `busy` and how to go on.
pub(crate) fn lock_folder(dir: &Path, name: &str, busy: impl FnOnce() -> String) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(name);
    let f = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(busy().into()),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display()).into()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_held_lock_is_refused_with_the_callers_message_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let held = super::lock_folder(dir.path(), ".lock", String::new).unwrap();
        let again = super::lock_folder(dir.path(), ".lock", || "busy".into());
        assert_eq!(again.unwrap_err().to_string(), "busy");
        drop(held);
        assert!(super::lock_folder(dir.path(), ".lock", String::new).is_ok());
    }
}
