//! A key holder's durable record of the sums it decrypted: at most one per round, in an
//! embedded redb file.
//!
//! Two different sums of one round would reveal their difference to whoever asked: with fog
//! aggregates of a few clients each, an aggregator could ask for `{1, 2, 3}` and then for
//! `{1, 2}` — both above `min_contributors` — and subtract to get client 3's update. So a
//! holder that answered a round answers that round's sum again (a retry) but never another
//! sum of it, across restarts too. The record is written before the share leaves the holder.

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};
use spddl_proto::RoundId;

const DECRYPTED: TableDefinition<u64, &[u8]> = TableDefinition::new("decrypted");

/// The sums this holder decrypted, by round.
#[derive(Debug)]
pub struct DecryptionLog {
    db: Database,
    path: String,
}

impl DecryptionLog {
    /// Opens (or creates) the log at `path`, creating its directory.
    pub fn open(path: &Path) -> Result<Self, String> {
        let name = path.display().to_string();
        let err = |e: &dyn std::fmt::Display| format!("key holder state {name}: {e}");
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
        }
        let db = Database::create(path).map_err(|e| err(&e))?;
        let tx = db.begin_write().map_err(|e| err(&e))?;
        tx.open_table(DECRYPTED).map_err(|e| err(&e))?;
        tx.commit().map_err(|e| err(&e))?;
        Ok(DecryptionLog { db, path: name })
    }

    /// Records that this holder decrypts the sum with `digest` in `round`, or refuses when it
    /// decrypted another sum of that round before. The same sum again is allowed.
    pub fn claim(&self, round: RoundId, digest: &[u8; 32]) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| format!("key holder state {}: {e}", self.path);
        // Check and record in one write transaction, so two claims cannot both pass.
        let tx = self.db.begin_write().map_err(|e| err(&e))?;
        {
            let mut table = tx.open_table(DECRYPTED).map_err(|e| err(&e))?;
            let earlier = table
                .get(round.0)
                .map_err(|e| err(&e))?
                .map(|old| old.value() == digest.as_slice());
            match earlier {
                Some(true) => return Ok(()),
                Some(false) => {
                    return Err(format!(
                        "decryption request for {round}: this holder already decrypted another sum of {round}: refused (two sums of one round reveal their difference)"
                    ));
                }
                None => {
                    table
                        .insert(round.0, digest.as_slice())
                        .map_err(|e| err(&e))?;
                }
            }
        }
        tx.commit().map_err(|e| err(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sum_per_round_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/holder-1.redb");
        let log = DecryptionLog::open(&path).unwrap();
        log.claim(RoundId(3), &[1; 32]).unwrap();
        log.claim(RoundId(3), &[1; 32]).unwrap(); // a retry of the same sum
        log.claim(RoundId(4), &[2; 32]).unwrap(); // another round
        let e = log.claim(RoundId(3), &[9; 32]).unwrap_err();
        assert!(
            e.contains("already decrypted another sum of round 3"),
            "{e}"
        );
        drop(log);
        let log = DecryptionLog::open(&path).unwrap();
        assert!(
            log.claim(RoundId(4), &[9; 32]).is_err(),
            "forgotten after a restart"
        );
        log.claim(RoundId(4), &[2; 32]).unwrap();
    }
}
