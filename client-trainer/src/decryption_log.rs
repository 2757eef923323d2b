//! A key holder's durable record of the sums it decrypted: at most one per round, in an
//! embedded redb file.
//!
//! Two different sums of one round would reveal their difference to whoever asked: with fog
//! aggregates of a few clients each, an aggregator could ask for `{1, 2, 3}` and then for
//! `{1, 2}` — both above `min_contributors` — and subtract to get client 3's update. So a
//! holder that answered a round answers that round's sum again (a retry) but never another
//! sum of it, across restarts too. The record is written before the share leaves the holder.

use std::collections::BTreeSet;
use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};
use spddl_proto::{ClientId, RoundId, state_file};

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
    /// were all made from the global model with digest `model` by the clients `contributors`,
    /// or refuses:
    ///
    /// - another sum of a round it answered (the same sum again is a retry, allowed);
    /// - a round older than one it answered (rounds only move forward);
    /// - a third sum from one global model, or a second whose contributors differ from the
    ///   first's by fewer than `min_contributors` clients (counting both ways). The same model
    ///   comes back only after a round that did not decode (it ends without an update). An
    ///   aggregator that claims so and leaves client `T` out of the second sum would read
    ///   `T`'s update from the difference (full-batch training makes the others' updates
    ///   equal). Of two sums over sets `A`, `B`, every nonzero combination `a·Σ_A + b·Σ_B`
    ///   covers `A ∪ B`, `A △ B`, `A` or `B`, each of at least `min_contributors` clients; a
    ///   third set can isolate one client (`A = {T} ∪ X`, `B = X ∪ Y`, `C = Y`:
    ///   `Σ_A − Σ_B + Σ_C = Δ_T`), so two is the limit.
    pub fn claim(
        &self,
        round: RoundId,
        model: &[u8; 32],
        sum: &[u8; 32],
        contributors: &[ClientId],
        min_contributors: u32,
    ) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| format!("key holder state {}: {e}", self.path);
        let set: BTreeSet<u32> = contributors.iter().map(|c| c.0).collect();
        // Check and record in one write transaction, so two claims cannot both pass.
        let tx = self.db.begin_write().map_err(|e| err(&e))?;
        {
            let mut table = tx.open_table(DECRYPTED).map_err(|e| err(&e))?;
            let mut same_model = Vec::new();
            for entry in table.iter().map_err(|e| err(&e))? {
                let (r, value) = entry.map_err(|e| err(&e))?;
                let (r, entry) = (RoundId(r.value()), Entry::parse(value.value()));
                if r == round {
                    if entry.sum == sum.as_slice() {
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
                if entry.model == model.as_slice() {
                    same_model.push((r, entry.contributors));
                }
            }
            match same_model.as_slice() {
                [] => {}
                [(r, Some(earlier))] => {
                    let differ = earlier.symmetric_difference(&set).count();
                    if differ != 0 && differ < min_contributors as usize {
                        return Err(format!(
                            "decryption request for {round}: its uploads were trained from the same global model as {r}, whose sum this holder decrypted, and its contributors differ from {r}'s by {differ} client(s), fewer than {min_contributors}: refused (the difference would reveal them)"
                        ));
                    }
                }
                [(r, None)] => {
                    return Err(format!(
                        "decryption request for {round}: its uploads were trained from the same global model as {r}, whose sum this holder decrypted (its contributors were not recorded): refused (two sums from one model reveal their difference)"
                    ));
                }
                [(r, _), ..] => {
                    return Err(format!(
                        "decryption request for {round}: this holder already decrypted two sums from the same global model ({r} and after): refused (a third would reveal one client's update)"
                    ));
                }
            }
            let mut value = sum.to_vec();
            value.extend_from_slice(model);
            for c in &set {
                value.extend_from_slice(&c.to_le_bytes());
            }
            table
                .insert(round.0, value.as_slice())
                .map_err(|e| err(&e))?;
        }
        tx.commit().map_err(|e| err(&e))
    }
}

/// One stored record: the sum's digest, the model's digest, then the contributors' ids
/// (`u32` little-endian). Records written before a field existed lack it.
struct Entry<'a> {
    sum: &'a [u8],
    model: &'a [u8],
    contributors: Option<BTreeSet<u32>>,
}

impl<'a> Entry<'a> {
    fn parse(value: &'a [u8]) -> Self {
        let (sum, rest) = value.split_at(value.len().min(32));
        let (model, ids) = rest.split_at(rest.len().min(32));
        let contributors = (!ids.is_empty() && ids.len() % 4 == 0).then(|| {
            ids.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        });
        Entry {
            sum,
            model,
            contributors,
        }
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
        log.claim(RoundId(3), &[3; 32], &[1; 32], &ids(0..6), 3)
            .unwrap();
        log.claim(RoundId(3), &[3; 32], &[1; 32], &ids(0..6), 3)
            .unwrap(); // a retry of the same sum
        log.claim(RoundId(4), &[4; 32], &[2; 32], &ids(0..6), 3)
            .unwrap(); // another round
        let e = log
            .claim(RoundId(4), &[4; 32], &[9; 32], &ids(0..6), 3)
            .unwrap_err();
        assert!(
            e.contains("already decrypted another sum of round 4"),
            "{e}"
        );
        drop(log);
        let log = DecryptionLog::open(&path, false).unwrap();
        assert!(
            log.claim(RoundId(4), &[4; 32], &[9; 32], &ids(0..6), 3)
                .is_err(),
            "forgotten after a restart"
        );
        log.claim(RoundId(4), &[4; 32], &[2; 32], &ids(0..6), 3)
            .unwrap();
    }

    fn ids(range: std::ops::Range<u32>) -> Vec<ClientId> {
        range.map(ClientId).collect()
    }

    #[test]
    fn rounds_only_move_forward_and_one_model_gives_at_most_two_distant_sums() {
        let dir = tempfile::tempdir().unwrap();
        let log = DecryptionLog::open(&dir.path().join("holder-2.redb"), true).unwrap();
        log.claim(RoundId(10), &[7; 32], &[1; 32], &ids(0..6), 3)
            .unwrap();
        // Round 11 from the same global model as round 10 without client 5: the aggregator's
        // two-round difference.
        let e = log
            .claim(RoundId(11), &[7; 32], &[2; 32], &ids(0..5), 3)
            .unwrap_err();
        assert!(
            e.contains("same global model as round 10")
                && e.contains("differ from round 10's by 1"),
            "{e}"
        );
        // Client 5 swapped for client 6: 2 apart, still fewer than 3.
        let swapped: Vec<ClientId> = [0, 1, 2, 3, 4, 6].map(ClientId).to_vec();
        assert!(
            log.claim(RoundId(11), &[7; 32], &[2; 32], &swapped, 3)
                .is_err()
        );
        let e = log
            .claim(RoundId(9), &[8; 32], &[3; 32], &ids(0..6), 3)
            .unwrap_err();
        assert!(e.contains("rounds only move forward"), "{e}");
        // After a round that did not decode, the same clients (or a set 3 apart) may be
        // summed again from the same model, once.
        log.claim(RoundId(11), &[7; 32], &[2; 32], &ids(0..6), 3)
            .unwrap();
        let e = log
            .claim(RoundId(12), &[7; 32], &[4; 32], &ids(0..6), 3)
            .unwrap_err();
        assert!(e.contains("two sums from the same global model"), "{e}");
        log.claim(RoundId(12), &[9; 32], &[4; 32], &ids(0..5), 3)
            .unwrap();
        log.claim(RoundId(13), &[9; 32], &[5; 32], &ids(3..8), 3)
            .unwrap();
        // A record from before contributors were kept: the same model is refused outright.
        let tx = log.db.begin_write().unwrap();
        {
            let mut t = tx.open_table(DECRYPTED).unwrap();
            let legacy = [[6u8; 32], [5u8; 32]].concat();
            t.insert(20, legacy.as_slice()).unwrap();
        }
        tx.commit().unwrap();
        let e = log
            .claim(RoundId(21), &[5; 32], &[6; 32], &ids(0..6), 3)
            .unwrap_err();
        assert!(e.contains("were not recorded"), "{e}");
    }
}
