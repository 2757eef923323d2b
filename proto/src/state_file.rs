//! Opening a process's durable state file (an embedded redb database) so that a lost or
//! damaged file is never taken for a new one.
//!
//! A state file carries a marker naming what it holds (`aggregator`, `key holder`), written
//! when it is created: by `spddl deploy init` for a new deployment, or by a process started
//! with `--fresh` on purpose. Without `fresh`, a missing file, an empty one, one redb cannot
//! read, or one without the expected marker is refused with one line naming the file: a key
//! holder that silently started anew would forget which sum of a round it decrypted, and an
//! aggregator would forget its rounds.
//!
//! redb 3 answers most damage with an error from `Database::open`, but a truncated file
//! fails an `assert!` inside it (the header's layout is longer than the file). That panic is
//! caught here (`catch_unwind` is the only way to turn it into an error), and kept off the
//! terminal while it is caught, so the user sees one line and no backtrace.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Once;

use redb::{Database, ReadableDatabase, TableDefinition};

const MARKER: TableDefinition<&str, &str> = TableDefinition::new("spddl_state");
const KIND: &str = "kind";

/// Why a state file cannot be used; the message names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {path}: {reason}")]
pub struct StateFileError {
    what: String,
    path: String,
    reason: String,
}

impl StateFileError {
    /// An error about the state file `path` holding `what` (e.g. "aggregator state").
    pub fn new(what: &str, path: &Path, reason: impl std::fmt::Display) -> Self {
        StateFileError {
            what: what.to_string(),
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}

/// An opened state file.
#[derive(Debug)]
pub struct StateFile {
    /// The database.
    pub db: Database,
    /// Where an existing file was moved when `fresh` replaced it.
    pub replaced: Option<PathBuf>,
}

/// What to do when asked to start over on purpose.
const HOW_TO_START_ANEW: &str = "a new deployment's state files are written by `spddl deploy init`; start with --fresh to begin anew on purpose";

/// Opens the state file at `path`, which must hold `kind` (the marker written on creation).
///
/// With `fresh`, a new file is created; an existing one is first moved aside to
/// `<path>.replaced-<unix seconds>` (never deleted). Without it, the file must exist and be
/// a readable redb database with the marker `kind`.
pub fn open(path: &Path, kind: &str, fresh: bool) -> Result<StateFile, StateFileError> {
    let what = format!("{kind} state");
    let err = |reason: &dyn std::fmt::Display| StateFileError::new(&what, path, reason);
    if fresh {
        let replaced = match std::fs::symlink_metadata(path) {
            Ok(_) => {
                // Never from under a process that has it open.
                if let Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) =
                    quietly(|| Database::open(path))
                {
                    return Err(err(
                        &"--fresh: in use: another process (or another run in this one) has it open",
                    ));
                }
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                // Never over an earlier file moved aside.
                let aside = (0..)
                    .map(|n: u32| {
                        let mut aside = path.as_os_str().to_owned();
                        aside.push(format!(".replaced-{secs}"));
                        if n > 0 {
                            aside.push(format!("-{n}"));
                        }
                        PathBuf::from(aside)
                    })
                    .find(|p| !p.exists())
                    .unwrap_or_else(|| path.with_extension("replaced"));
                std::fs::rename(path, &aside).map_err(|e| {
                    err(&format_args!(
                        "--fresh: cannot move the old file aside to {}: {e}",
                        aside.display()
                    ))
                })?;
                Some(aside)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(err(&e)),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
        }
        let db = Database::builder()
            .create_file(
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(path)
                    .map_err(|e| err(&e))?,
            )
            .map_err(|e| err(&e))?;
        let tx = db.begin_write().map_err(|e| err(&e))?;
        {
            let mut marker = tx.open_table(MARKER).map_err(|e| err(&e))?;
            marker.insert(KIND, kind).map_err(|e| err(&e))?;
        }
        tx.commit().map_err(|e| err(&e))?;
        return Ok(StateFile { db, replaced });
    }
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(err(&format_args!("missing; {HOW_TO_START_ANEW}")));
        }
        Err(e) => return Err(err(&e)),
    };
    if meta.len() == 0 {
        return Err(err(&format_args!(
            "empty file (0 bytes), not a state file: its records are lost; {HOW_TO_START_ANEW}"
        )));
    }
    let db = match quietly(|| Database::open(path)) {
        Ok(Ok(db)) => db,
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => {
            return Err(err(
                &"in use: another process (or another run in this one) has it open",
            ));
        }
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(e))))
            if !matches!(
                e.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            return Err(err(&format_args!("cannot be opened: {e}")));
        }
        Ok(Err(e)) => {
            return Err(err(&format_args!(
                "corrupt or not a state file ({e}); {HOW_TO_START_ANEW}"
            )));
        }
        Err(panic) => {
            return Err(err(&format_args!(
                "corrupt or truncated ({} bytes; the database refused it: {panic}); {HOW_TO_START_ANEW}",
                meta.len()
            )));
        }
    };
    let found = quietly(|| -> Result<Option<String>, redb::Error> {
        let tx = db.begin_read()?;
        let table = match tx.open_table(MARKER) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(table.get(KIND)?.map(|v| v.value().to_string()))
    });
    match found {
        Ok(Ok(Some(k))) if k == kind => Ok(StateFile { db, replaced: None }),
        Ok(Ok(Some(k))) => Err(err(&format_args!(
            "holds {k} state, not {kind} state: the wrong file"
        ))),
        Ok(Ok(None)) => Err(err(&format_args!(
            "a database without the SPDDL marker `{kind}`: not this process's state file; {HOW_TO_START_ANEW}"
        ))),
        Ok(Err(e)) => Err(err(&format_args!("corrupt ({e}); {HOW_TO_START_ANEW}"))),
        Err(panic) => Err(err(&format_args!(
            "corrupt (the database refused it: {panic}); {HOW_TO_START_ANEW}"
        ))),
    }
}

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, turning a panic inside it into an error with the panic's message; while it runs,
/// this thread's panics are not printed (other threads' are, by the hook there was before).
fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "an internal check failed".into())
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_empty_truncated_foreign_and_wrong_kind_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/a.redb");
        let e = open(&path, "aggregator", false).unwrap_err().to_string();
        assert!(
            e.starts_with("aggregator state ") && e.contains("a.redb: missing;"),
            "{e}"
        );

        let file = open(&path, "aggregator", true).unwrap();
        assert_eq!(file.replaced, None);
        drop(file);
        let held = open(&path, "aggregator", false).unwrap();
        let e = open(&path, "aggregator", false).unwrap_err().to_string();
        assert!(e.contains("in use: another process"), "{e}");
        let e = open(&path, "aggregator", true).unwrap_err().to_string();
        assert!(e.contains("--fresh: in use"), "{e}");
        drop(held);
        let e = open(&path, "key holder", false).unwrap_err().to_string();
        assert!(
            e.contains("holds aggregator state, not key holder state"),
            "{e}"
        );

        let good = std::fs::read(&path).unwrap();
        std::fs::write(&path, b"").unwrap();
        let e = open(&path, "aggregator", false).unwrap_err().to_string();
        assert!(e.contains("empty file (0 bytes)"), "{e}");
        for len in [1, 100, good.len() / 2, good.len() - 1] {
            std::fs::write(&path, &good[..len]).unwrap();
            let e = open(&path, "aggregator", false).unwrap_err().to_string();
            assert!(e.contains("corrupt"), "{len} bytes: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
        std::fs::write(&path, vec![0x5a; good.len()]).unwrap();
        let e = open(&path, "aggregator", false).unwrap_err().to_string();
        assert!(e.contains("corrupt"), "{e}");

        // A redb file of someone else's.
        let other = dir.path().join("other.redb");
        drop(Database::create(&other).unwrap());
        let e = open(&other, "aggregator", false).unwrap_err().to_string();
        assert!(e.contains("without the SPDDL marker"), "{e}");

        // --fresh moves the damaged file aside and starts anew.
        let file = open(&path, "aggregator", true).unwrap();
        let aside = file.replaced.clone().unwrap();
        assert_eq!(std::fs::read(&aside).unwrap(), vec![0x5a; good.len()]);
        drop(file);
        open(&path, "aggregator", false).unwrap();
    }
}
