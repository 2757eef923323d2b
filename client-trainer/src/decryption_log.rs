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
use spddl_proto::{RoundId, state_file};

const DECRYPTED: TableDefinition<u64, &[u8]> = TableDefinition::new("decrypted");

/// The sums this holder decrypted, by round.
#[derive(Debug)]
pub struct DecryptionLog {
    db: Database,
    path: String,
}

impl DecryptionLog {
    /// Opens the log at `path`: an existing key holder state file (see
    /// [`spddl_proto::state_file`]: a missing, empty or damaged file is refused, since a
    /// holder that started anew would forget the sums it decrypted), or, with `fresh`, a new
    /// one (an existing file is moved aside first, never deleted).
    pub fn open(path: &Path, fresh: bool) -> Result<Self, String> {
        let name = path.display().to_string();
        let file = state_file::open(path, "key holder", fresh).map_err(|e| e.to_string())?;
        if let Some(aside) = &file.replaced {
            tracing::warn!(
                "--fresh: key holder state {name} starts anew; the old file is kept as {}",
                aside.display()
            );
        }
        let db = file.db;
        let err = |e: &dyn std::fmt::Display| format!("key holder state {name}: {e}");
        let tx = db.begin_write().map_err(|e| err(&e))?;
        tx.open_table(DECRYPTED).map_err(|e| err(&e))?;
        tx.commit().map_err(|e| err(&e))?;
        Ok(DecryptionLog { db, path: name })
    }

    /// Records that this holder decrypts the sum with digest `sum` of `round`, whose uploads
    /// were all made from the global model with digest `model`, or refuses:
    ///
    /// - another sum of a round it answered (the same sum again is a retry, allowed);
    /// - a round older than one it answered (rounds only move forward);
    /// - a sum from a global model it already decrypted a sum of, in another round: an
    ///   aggregator that keeps the model still and leaves a client out of the second sum
    ///   (full-batch training makes the updates equal) would read that client's update from
    ///   the difference.
    pub fn claim(&self, round: RoundId, model: &[u8; 32], sum: &[u8; 32]) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| format!("key holder state {}: {e}", self.path);
        // Check and record in one write transaction, so two claims cannot both pass.
        let tx = self.db.begin_write().map_err(|e| err(&e))?;
        {
            let mut table = tx.open_table(DECRYPTED).map_err(|e| err(&e))?;
            for entry in table.iter().map_err(|e| err(&e))? {
                let (r, value) = entry.map_err(|e| err(&e))?;
                let (r, value) = (RoundId(r.value()), value.value());
                let (old_sum, old_model) = value.split_at(value.len().min(32));
                if r == round {
                    if old_sum == sum.as_slice() {
                        return Ok(());
                    }
                    return Err(format!(
                        "decryption request for {round}: this holder already decrypted another sum of {round}: refused (two sums of one round reveal their difference)"
                    ));
                }
                if r > round {
                    return Err(format!(
                        "decryption request for {round}: this holder already decrypted {r}: refused (rounds only move forward)"
                    ));
                }
                if old_model == model.as_slice() {
                    return Err(format!(
                        "decryption request for {round}: its uploads were trained from the same global model as {r}, whose sum this holder decrypted: refused (two sums from one model reveal their difference)"
                    ));
                }
            }
            let mut value = sum.to_vec();
            value.extend_from_slice(model);
            table
                .insert(round.0, value.as_slice())
                .map_err(|e| err(&e))?;
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
        assert!(
            DecryptionLog::open(&path, false)
                .unwrap_err()
                .contains("holder-1.redb: missing"),
            "a missing record is not taken for a new one"
        );
        let log = DecryptionLog::open(&path, true).unwrap();
        log.claim(RoundId(3), &[3; 32], &[1; 32]).unwrap();
        log.claim(RoundId(3), &[3; 32], &[1; 32]).unwrap(); // a retry of the same sum
        log.claim(RoundId(4), &[4; 32], &[2; 32]).unwrap(); // another round
        let e = log.claim(RoundId(4), &[4; 32], &[9; 32]).unwrap_err();
        assert!(
            e.contains("already decrypted another sum of round 4"),
            "{e}"
        );
        drop(log);
        let log = DecryptionLog::open(&path, false).unwrap();
        assert!(
            log.claim(RoundId(4), &[4; 32], &[9; 32]).is_err(),
            "forgotten after a restart"
        );
        log.claim(RoundId(4), &[4; 32], &[2; 32]).unwrap();
    }

    #[test]
    fn rounds_only_move_forward_and_one_model_gives_one_sum() {
        let dir = tempfile::tempdir().unwrap();
        let log = DecryptionLog::open(&dir.path().join("holder-2.redb"), true).unwrap();
        log.claim(RoundId(10), &[7; 32], &[1; 32]).unwrap();
        // Round 11 from the same global model as round 10: the aggregator's two-round
        // difference.
        let e = log.claim(RoundId(11), &[7; 32], &[2; 32]).unwrap_err();
        assert!(e.contains("same global model as round 10"), "{e}");
        let e = log.claim(RoundId(9), &[8; 32], &[3; 32]).unwrap_err();
        assert!(e.contains("rounds only move forward"), "{e}");
        log.claim(RoundId(11), &[8; 32], &[2; 32]).unwrap();
    }
}
