//! The aggregator's durable state in an embedded redb database (one file, no server):
//! registered participants, the global model after every round, the round log, and the
//! in-flight round's assignment and accepted fog aggregates.
//!
//! A fog aggregate is written (and committed) before the fog worker is told it was accepted,
//! and a fog worker answers its clients only after that: an acknowledged update is on disk.
//! Completing a round is one transaction (log entry, new model, next round, dropping the
//! round's aggregates), so a crash leaves either the old round or the new one, never half.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::Assignment;
use spddl_proto::{ClientId, FogId, RoundId, state_file};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const PARTICIPANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("participants");
const MODELS: TableDefinition<u64, &[u8]> = TableDefinition::new("models");
const ROUND_LOG: TableDefinition<u64, &str> = TableDefinition::new("round_log");
const OPEN_ROUNDS: TableDefinition<u64, &str> = TableDefinition::new("open_rounds");
const AGGREGATES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("aggregates");
const CLOSED: TableDefinition<u64, ()> = TableDefinition::new("closed_collections");

/// A storage failure, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(String);

/// One completed round, as recorded in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// The round.
    pub round: u64,
    /// Clients in the sum, with weights.
    pub contributors: Vec<(u32, u64)>,
    /// Holders whose shares were combined.
    pub holders_used: Vec<u16>,
    /// Holders asked that did not answer.
    pub silent: Vec<u16>,
    /// Shares refused, each with its reason.
    pub blamed: Vec<String>,
    /// Test accuracy of the new global model, if the aggregator evaluates.
    pub accuracy: Option<f64>,
    /// Seconds from opening the round to completing it.
    pub wall_s: f64,
    /// Seconds of collection (open → closed).
    pub collect_s: f64,
    /// Seconds of decryption (closed → completed).
    pub decrypt_s: f64,
    /// SHA-256 of the new global model (hex), to compare runs.
    pub model_digest: String,
    /// Why the round ended without an update (its sum did not decode), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// Where a stored run resumes.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumePoint {
    /// The current round (the next to complete).
    pub round: RoundId,
    /// The global model it starts from.
    pub global: Vec<f32>,
    /// The strategy's name and state after the last completed round (`None` before the
    /// first).
    pub strategy: Option<(String, Vec<u8>)>,
}

/// The aggregator's database.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: String,
}

impl Store {
    /// Opens the database at `path`: an existing state file of an aggregator (see
    /// [`spddl_proto::state_file`]: a missing, empty or damaged file is refused), or, with
    /// `fresh`, a new one (an existing file is moved aside first).
    pub fn open(path: &Path, fresh: bool) -> Result<Self, StoreError> {
        let name = path.display().to_string();
        let file =
            state_file::open(path, "aggregator", fresh).map_err(|e| StoreError(e.to_string()))?;
        if let Some(aside) = &file.replaced {
            tracing::warn!(
                "--fresh: aggregator state {name} starts anew; the old file is kept as {}",
                aside.display()
            );
        }
        let store = Store {
            db: file.db,
            path: name,
        };
        // Create every table so that readers never meet a missing one.
        store.write("creating the tables", |tx| {
            tx.open_table(META)?;
            tx.open_table(PARTICIPANTS)?;
            tx.open_table(MODELS)?;
            tx.open_table(ROUND_LOG)?;
            tx.open_table(OPEN_ROUNDS)?;
            tx.open_table(AGGREGATES)?;
            tx.open_table(CLOSED)?;
            Ok(())
        })?;
        Ok(store)
    }

    /// The file's path, for messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError(format!("aggregator state {}: {e}", self.path))
    }

    /// One write transaction; a failure names `what` was being written.
    fn write<T>(
        &self,
        what: impl std::fmt::Display,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        let fail = |e: &dyn std::fmt::Display| self.err(format_args!("{what} failed: {e}"));
        let tx = self.db.begin_write().map_err(|e| fail(&e))?;
        let out = f(&tx).map_err(|e| fail(&e))?;
        tx.commit().map_err(|e| fail(&e))?;
        Ok(out)
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        f(&tx).map_err(|e| self.err(e))
    }

    /// Records the public identities the aggregator trusts (`kind/id` → key bytes).
    pub fn save_participants(&self, entries: &[(String, [u8; 32])]) -> Result<(), StoreError> {
        self.write("storing the participants", |tx| {
            let mut t = tx.open_table(PARTICIPANTS)?;
            for (name, key) in entries {
                t.insert(name.as_str(), key.as_slice())?;
            }
            Ok(())
        })
    }

    /// The number of recorded participants.
    pub fn participants(&self) -> Result<usize, StoreError> {
        self.read(|tx| Ok(tx.open_table(PARTICIPANTS)?.len()? as usize))
    }

    /// Where to resume: the current round, the global model it starts from and the
    /// strategy's state (see [`ResumePoint`]), or `None` for a new run.
    pub fn resume_point(&self) -> Result<Option<ResumePoint>, StoreError> {
        let point = self.read(|tx| {
            let meta = tx.open_table(META)?;
            let Some(round) = meta.get("round")? else {
                return Ok(None);
            };
            let round: Option<[u8; 8]> = round.value().try_into().ok();
            let global = meta.get("global")?.map(|g| g.value().to_vec());
            let strategy = match meta.get("strategy")? {
                Some(name) => Some((
                    String::from_utf8_lossy(name.value()).into_owned(),
                    meta.get("strategy_state")?
                        .map(|s| s.value().to_vec())
                        .unwrap_or_default(),
                )),
                None => None,
            };
            Ok(Some((round, global, strategy)))
        })?;
        let Some((round, global, strategy)) = point else {
            return Ok(None);
        };
        let round = round.ok_or_else(|| self.err("the round number is not 8 bytes: corrupt"))?;
        let global = global.ok_or_else(|| self.err("a round but no global model: corrupt"))?;
        if global.len() % 4 != 0 {
            return Err(self.err("the global model is not a whole number of f32s: corrupt"));
        }
        Ok(Some(ResumePoint {
            round: RoundId(u64::from_le_bytes(round)),
            global: decode_model(&global),
            strategy,
        }))
    }

    /// Stores the model the run starts from (round 0), unless the database has a run.
    pub fn init(&self, global: &[f32]) -> Result<(), StoreError> {
        self.write("storing the initial model", |tx| {
            let mut meta = tx.open_table(META)?;
            if meta.get("round")?.is_none() {
                meta.insert("round", 0u64.to_le_bytes().as_slice())?;
                meta.insert("global", encode_model(global).as_slice())?;
            }
            Ok(())
        })
    }

    /// Records the assignment of a round being opened (kept for a restart mid-round).
    pub fn open_round(&self, round: RoundId, assignment: &Assignment) -> Result<(), StoreError> {
        let json = assignment_to_json(assignment);
        self.write(format_args!("recording the assignment of {round}"), |tx| {
            tx.open_table(OPEN_ROUNDS)?.insert(round.0, json.as_str())?;
            Ok(())
        })
    }

    /// The recorded assignment of an open round.
    pub fn round_assignment(&self, round: RoundId) -> Result<Option<Assignment>, StoreError> {
        self.read(|tx| {
            Ok(tx
                .open_table(OPEN_ROUNDS)?
                .get(round.0)?
                .and_then(|j| assignment_from_json(j.value())))
        })
    }

    /// Durably adds an accepted fog aggregate (its wire bytes) to the round.
    pub fn add_aggregate(&self, round: RoundId, bytes: &[u8]) -> Result<(), StoreError> {
        self.write(
            format_args!("storing an accepted aggregate of {round}"),
            |tx| {
                let mut t = tx.open_table(AGGREGATES)?;
                let next = t
                    .range((round.0, 0)..=(round.0, u64::MAX))?
                    .next_back()
                    .transpose()?
                    .map_or(0, |(k, _)| k.value().1 + 1);
                t.insert((round.0, next), bytes)?;
                Ok(())
            },
        )
    }

    /// The accepted fog aggregates of a round, in arrival order.
    pub fn aggregates(&self, round: RoundId) -> Result<Vec<Vec<u8>>, StoreError> {
        self.read(|tx| {
            let t = tx.open_table(AGGREGATES)?;
            t.range((round.0, 0)..=(round.0, u64::MAX))?
                .map(|e| e.map(|(_, v)| v.value().to_vec()).map_err(Into::into))
                .collect()
        })
    }

    /// Records that collection of `round` closed: its sum is the product of the aggregates
    /// stored now, and a restarted aggregator must ask for exactly that sum again (holders
    /// refuse a second sum of a round).
    pub fn close_collection(&self, round: RoundId) -> Result<(), StoreError> {
        self.write(
            format_args!("recording the closed collection of {round}"),
            |tx| {
                tx.open_table(CLOSED)?.insert(round.0, ())?;
                Ok(())
            },
        )
    }

    /// Whether collection of `round` closed before (see [`Store::close_collection`]).
    pub fn collection_closed(&self, round: RoundId) -> Result<bool, StoreError> {
        self.read(|tx| Ok(tx.open_table(CLOSED)?.get(round.0)?.is_some()))
    }

    /// Completes a round in one transaction: its log entry, the new global model, the
    /// strategy's state after the round (`strategy`: its name and [`Strategy::state`]), the
    /// next round number; its aggregates and assignment are dropped.
    ///
    /// [`Strategy::state`]: crate::Strategy::state
    pub fn complete_round(
        &self,
        record: &RoundRecord,
        global: &[f32],
        strategy: (&str, &[u8]),
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(|e| self.err(e))?;
        let model = encode_model(global);
        let round = record.round;
        self.write(
            format_args!("storing completed round {round} (record, model, strategy state)"),
            |tx| {
                tx.open_table(ROUND_LOG)?.insert(round, json.as_str())?;
                tx.open_table(MODELS)?.insert(round, model.as_slice())?;
                let mut meta = tx.open_table(META)?;
                meta.insert("round", (round + 1).to_le_bytes().as_slice())?;
                meta.insert("global", model.as_slice())?;
                meta.insert("strategy", strategy.0.as_bytes())?;
                meta.insert("strategy_state", strategy.1)?;
                let mut t = tx.open_table(AGGREGATES)?;
                let keys: Vec<(u64, u64)> = t
                    .range((round, 0)..=(round, u64::MAX))?
                    .map(|e| e.map(|(k, _)| k.value()))
                    .collect::<Result<_, _>>()?;
                for k in &keys {
                    t.remove(k)?;
                }
                tx.open_table(OPEN_ROUNDS)?.remove(round)?;
                tx.open_table(CLOSED)?.remove(round)?;
                Ok(())
            },
        )
    }

    /// The round log, in round order.
    pub fn round_log(&self) -> Result<Vec<RoundRecord>, StoreError> {
        self.read(|tx| {
            let t = tx.open_table(ROUND_LOG)?;
            let mut out = Vec::new();
            for e in t.iter()? {
                let (_, v) = e?;
                if let Ok(r) = serde_json::from_str(v.value()) {
                    out.push(r);
                }
            }
            Ok(out)
        })
    }

    /// The global model after `round`, if that round completed.
    pub fn model_after(&self, round: u64) -> Result<Option<Vec<f32>>, StoreError> {
        self.read(|tx| {
            Ok(tx
                .open_table(MODELS)?
                .get(round)?
                .map(|m| decode_model(m.value())))
        })
    }
}

fn encode_model(params: &[f32]) -> Vec<u8> {
    params.iter().flat_map(|p| p.to_le_bytes()).collect()
}

fn decode_model(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn assignment_to_json(a: &Assignment) -> String {
    let rows: Vec<(u32, Vec<u32>)> = a
        .iter()
        .map(|(c, fs)| (c.0, fs.iter().map(|f| f.0).collect()))
        .collect();
    serde_json::to_string(&rows).unwrap_or_default()
}

fn assignment_from_json(s: &str) -> Option<Assignment> {
    let rows: Vec<(u32, Vec<u32>)> = serde_json::from_str(s).ok()?;
    Some(
        rows.into_iter()
            .map(|(c, fs)| (ClientId(c), fs.into_iter().map(FogId).collect()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(round: u64) -> RoundRecord {
        RoundRecord {
            round,
            contributors: vec![(1, 10), (2, 20)],
            holders_used: vec![1, 2, 3],
            silent: vec![],
            blamed: vec![],
            accuracy: Some(0.5),
            wall_s: 1.0,
            collect_s: 0.5,
            decrypt_s: 0.5,
            model_digest: "00".into(),
            skipped: None,
        }
    }

    #[test]
    fn state_survives_reopening_and_rounds_complete_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let s = Store::open(&path, true).unwrap();
            assert_eq!(s.resume_point().unwrap(), None);
            s.init(&[1.0, 2.0]).unwrap();
            let a: Assignment = [(ClientId(1), vec![FogId(0), FogId(1)])].into();
            s.open_round(RoundId(0), &a).unwrap();
            s.add_aggregate(RoundId(0), b"first").unwrap();
            s.add_aggregate(RoundId(0), b"second").unwrap();
            assert!(!s.collection_closed(RoundId(0)).unwrap());
            s.close_collection(RoundId(0)).unwrap();
        }
        let s = Store::open(&path, false).unwrap();
        assert!(s.collection_closed(RoundId(0)).unwrap());
        assert!(!s.collection_closed(RoundId(1)).unwrap());
        assert_eq!(
            s.resume_point().unwrap(),
            Some(ResumePoint {
                round: RoundId(0),
                global: vec![1.0, 2.0],
                strategy: None
            })
        );
        assert_eq!(
            s.round_assignment(RoundId(0)).unwrap().unwrap()[&ClientId(1)],
            vec![FogId(0), FogId(1)]
        );
        assert_eq!(
            s.aggregates(RoundId(0)).unwrap(),
            vec![b"first".to_vec(), b"second".to_vec()]
        );
        s.complete_round(&record(0), &[3.0, 4.0], ("fedadam", b"moments"))
            .unwrap();
        drop(s);
        let s = Store::open(&path, false).unwrap();
        assert_eq!(
            s.resume_point().unwrap(),
            Some(ResumePoint {
                round: RoundId(1),
                global: vec![3.0, 4.0],
                strategy: Some(("fedadam".into(), b"moments".to_vec()))
            })
        );
        assert!(s.aggregates(RoundId(0)).unwrap().is_empty());
        assert_eq!(s.round_assignment(RoundId(0)).unwrap(), None);
        assert!(!s.collection_closed(RoundId(0)).unwrap());
        assert_eq!(s.round_log().unwrap(), vec![record(0)]);
        assert_eq!(s.model_after(0).unwrap(), Some(vec![3.0, 4.0]));
        // init does not reset a run in progress.
        s.init(&[9.0]).unwrap();
        assert_eq!(s.resume_point().unwrap().unwrap().round, RoundId(1));
    }
}
