//! The simulation's dealer key, cached on disk so that only the first run with a given
//! `(bits, t, ℓ)` waits for the safe-prime search.
//!
//! The cache lives in `$SPDDL_CACHE_DIR`, else `$XDG_CACHE_HOME/spddl/keys`, else
//! `$HOME/.cache/spddl/keys`. Each entry is a directory `n{bits}-t{t}-l{ℓ}/` (mode 0700) holding
//! `public.json` and `share-<i>.json` (mode 0600) in the formats of [`spddl_crypto::formats`],
//! the same files `spddl keygen` writes. An entry that does not load and check out is replaced
//! with a warning: a bad cache never fails a run.
//!
//! These are simulation keys: every share sits in one directory, so whoever reads it can
//! decrypt. Never use a cached key for a real deployment.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use spddl_crypto::Entropy;
use spddl_crypto::formats::{read_secret_file, write_secret_file};
use spddl_crypto::paillier::{Dealer, KeyShare, PublicKey};

/// Where the key of a run came from (recorded in `summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum KeySource {
    /// Dealt by this run, after a safe-prime search of `seconds`.
    Generated {
        /// Seconds spent on the prime search and the dealing.
        seconds: f64,
    },
    /// Loaded from the cache entry at `path`.
    Cached {
        /// The entry's directory.
        path: PathBuf,
    },
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Generated { seconds } => write!(f, "generated in {seconds:.1} s"),
            KeySource::Cached { path } => write!(f, "cached in {}", path.display()),
        }
    }
}

/// The cache directory named by the environment, or `None` when neither `SPDDL_CACHE_DIR`,
/// `XDG_CACHE_HOME` nor `HOME` is set.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("SPDDL_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(xdg) = var("XDG_CACHE_HOME") {
        return Some(Path::new(&xdg).join("spddl").join("keys"));
    }
    var("HOME").map(|home| Path::new(&home).join(".cache").join("spddl").join("keys"))
}

/// The entry directory of `(bits, t, ℓ)` under the cache directory `root`.
pub fn entry_dir(root: &Path, bits: u64, t: u16, l: u16) -> PathBuf {
    root.join(format!("n{bits}-t{t}-l{l}"))
}

/// A `t`-of-`ℓ` dealer key with a `bits`-bit modulus: loaded from the cache of
/// [`cache_dir`], or dealt (and cached) when there is no usable entry or `fresh` is set.
///
/// Fails only when the parameters are invalid or the dealing itself fails; cache problems are
/// warnings on standard error.
pub fn load_or_generate(
    bits: u64,
    t: u16,
    l: u16,
    fresh: bool,
    entropy: &mut Entropy,
) -> Result<(PublicKey, Vec<KeyShare>, KeySource)> {
    // Refuse bad parameters before a cache lookup or a prime search.
    Dealer::check_threshold(t, l)?;
    let mut generate = || -> Result<(PublicKey, Vec<KeyShare>)> {
        let dealer = Dealer::generate(bits, entropy)?;
        Ok(dealer.deal(t, l, entropy)?)
        // `dealer` is dropped here, wiping p and q.
    };
    match cache_dir() {
        Some(root) => load_or_generate_in(&root, bits, t, l, fresh, generate),
        None => {
            eprintln!(
                "warning: no cache directory (set SPDDL_CACHE_DIR or HOME): the key is not cached"
            );
            let start = Instant::now();
            let (pk, shares) = generate()?;
            let seconds = start.elapsed().as_secs_f64();
            Ok((pk, shares, KeySource::Generated { seconds }))
        }
    }
}

/// [`load_or_generate`] over the cache directory `root`, dealing with `generate` when needed.
/// Takes the directory and the dealer as parameters so tests need neither the environment nor
/// a prime search.
pub fn load_or_generate_in(
    root: &Path,
    bits: u64,
    t: u16,
    l: u16,
    fresh: bool,
    generate: impl FnOnce() -> Result<(PublicKey, Vec<KeyShare>)>,
) -> Result<(PublicKey, Vec<KeyShare>, KeySource)> {
    load_or_generate_with(root, bits, t, l, fresh, generate, &mut |w| {
        eprintln!("warning: {w}");
    })
}

/// The cache logic, with warnings handed to `warn` instead of printed.
fn load_or_generate_with(
    root: &Path,
    bits: u64,
    t: u16,
    l: u16,
    fresh: bool,
    generate: impl FnOnce() -> Result<(PublicKey, Vec<KeyShare>)>,
    warn: &mut dyn FnMut(String),
) -> Result<(PublicKey, Vec<KeyShare>, KeySource)> {
    let dir = entry_dir(root, bits, t, l);
    if !fresh && dir.exists() {
        match load(&dir, bits, t, l, warn) {
            Ok((pk, shares)) => return Ok((pk, shares, KeySource::Cached { path: dir })),
            Err(reason) => warn(format!(
                "key cache {} is unusable ({reason}); dealing a new key",
                dir.display()
            )),
        }
    }
    let start = Instant::now();
    let (pk, shares) = generate()?;
    let seconds = start.elapsed().as_secs_f64();
    if let Err(reason) = check(&pk, &shares, bits, t, l) {
        bail!("the dealer returned a key that does not fit n{bits}-t{t}-l{l}: {reason}");
    }
    if let Err(e) = store(root, &dir, &pk, &shares) {
        warn(format!(
            "cannot cache the key in {}: {e}; the next run deals again",
            dir.display()
        ));
    }
    Ok((pk, shares, KeySource::Generated { seconds }))
}

/// Checks that a key is the `t`-of-`ℓ` key with a `bits`-bit modulus, shares in order `1..=ℓ`.
fn check(pk: &PublicKey, shares: &[KeyShare], bits: u64, t: u16, l: u16) -> Result<(), String> {
    let found = (pk.bits(), pk.threshold(), pk.holders());
    if found != (bits, t, l) {
        return Err(format!(
            "the public key is n{}-t{}-l{}",
            found.0, found.1, found.2
        ));
    }
    if shares.len() != usize::from(l) {
        return Err(format!("{} shares for {l} holders", shares.len()));
    }
    for (i, share) in (1..=l).zip(shares) {
        if share.index().get() != i || share.key_id() != pk.key_id() {
            return Err(format!("share {i} is not holder {i}'s share of this key"));
        }
    }
    Ok(())
}

/// Reads and checks an entry: the public key's own consistency, its parameters, and every
/// share against its verification key.
fn load(
    dir: &Path,
    bits: u64,
    t: u16,
    l: u16,
    warn: &mut dyn FnMut(String),
) -> Result<(PublicKey, Vec<KeyShare>), String> {
    let public = dir.join("public.json");
    let json = std::fs::read_to_string(&public).map_err(|e| format!("public.json: {e}"))?;
    let pk = PublicKey::from_json(&json).map_err(|e| format!("public.json: {e}"))?;
    let shares = (1..=l)
        .map(|i| {
            let name = format!("share-{i}.json");
            let (json, loose) =
                read_secret_file(&dir.join(&name)).map_err(|e| format!("{name}: {e}"))?;
            if let Some(loose) = loose {
                warn(loose);
            }
            KeyShare::from_json(&pk, &json).map_err(|e| format!("{name}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    check(&pk, &shares, bits, t, l)?;
    Ok((pk, shares))
}

/// Writes the entry into a fresh directory beside `dir`, then moves it into place, so a
/// reader never sees half an entry written by this run.
fn store(root: &Path, dir: &Path, pk: &PublicKey, shares: &[KeyShare]) -> std::io::Result<()> {
    create_private_dir(root, true)?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = unique_suffix();
    let tmp = root.join(format!(".{name}.tmp-{unique}"));
    let result = write_entry(&tmp, pk, shares).and_then(|()| {
        // rename(2) cannot replace a non-empty directory: move the old entry aside first.
        let old = root.join(format!(".{name}.old-{unique}"));
        match std::fs::rename(dir, &old) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::rename(&tmp, dir)?;
        // Best effort: a leftover hidden directory is harmless.
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

fn write_entry(tmp: &Path, pk: &PublicKey, shares: &[KeyShare]) -> std::io::Result<()> {
    create_private_dir(tmp, false)?;
    std::fs::write(tmp.join("public.json"), pk.to_json())?;
    for share in shares {
        let path = tmp.join(format!("share-{}.json", share.index()));
        write_secret_file(&path, share.to_json().as_bytes())?;
    }
    Ok(())
}

/// Creates `dir` with mode 0700 (and, with `parents`, any missing parent with the same mode).
fn create_private_dir(dir: &Path, parents: bool) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(parents);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// A name part no other process (nor an earlier call of this one) uses at the same time.
fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{nanos}", std::process::id())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use spddl_crypto::testing::test_dealer;

    use super::*;

    const BITS: u64 = 1024;

    /// A dealer over the checked-in test primes that counts its calls.
    fn dealer(
        t: u16,
        l: u16,
        calls: &Cell<u32>,
    ) -> impl FnOnce() -> Result<(PublicKey, Vec<KeyShare>)> {
        move || {
            calls.set(calls.get() + 1);
            Ok(test_dealer(BITS).deal(t, l, &mut Entropy::os())?)
        }
    }

    fn run(
        root: &Path,
        t: u16,
        l: u16,
        fresh: bool,
        calls: &Cell<u32>,
    ) -> (PublicKey, Vec<KeyShare>, KeySource, Vec<String>) {
        let mut warnings = Vec::new();
        let (pk, shares, source) =
            load_or_generate_with(root, BITS, t, l, fresh, dealer(t, l, calls), &mut |w| {
                warnings.push(w)
            })
            .unwrap();
        (pk, shares, source, warnings)
    }

    #[test]
    fn the_second_run_loads_the_key_the_first_dealt() {
        let root = tempfile::tempdir().unwrap();
        let calls = Cell::new(0);
        let (pk, shares, source, warnings) = run(root.path(), 2, 3, false, &calls);
        assert!(matches!(source, KeySource::Generated { .. }), "{source:?}");
        assert!(warnings.is_empty(), "{warnings:?}");

        let (pk2, shares2, source2, warnings) = run(root.path(), 2, 3, false, &calls);
        let dir = root.path().join("n1024-t2-l3");
        assert_eq!(source2, KeySource::Cached { path: dir.clone() });
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(calls.get(), 1, "the second run must not deal");
        assert_eq!(pk2, pk);
        for (a, b) in shares.iter().zip(&shares2) {
            assert_eq!((a.index(), a.secret()), (b.index(), b.secret()));
        }

        // Other parameters are another entry.
        let (pk3, _, source3, _) = run(root.path(), 3, 3, false, &calls);
        assert!(matches!(source3, KeySource::Generated { .. }));
        assert_eq!(pk3.threshold(), 3);
        assert!(root.path().join("n1024-t3-l3").is_dir());
    }

    #[cfg(unix)]
    #[test]
    fn entries_are_private_and_leave_no_temporary_directory() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let cache = root.path().join("deep").join("keys");
        run(&cache, 2, 3, false, &Cell::new(0));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = cache.join("n1024-t2-l3");
        assert_eq!(mode(&cache), 0o700);
        assert_eq!(mode(&dir), 0o700);
        for i in 1..=3 {
            assert_eq!(mode(&dir.join(format!("share-{i}.json"))), 0o600);
        }
        let names: Vec<_> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["n1024-t2-l3"]);
    }

    #[test]
    fn fresh_replaces_the_entry() {
        let root = tempfile::tempdir().unwrap();
        let calls = Cell::new(0);
        let (pk, ..) = run(root.path(), 2, 3, false, &calls);
        let (pk2, _, source, warnings) = run(root.path(), 2, 3, true, &calls);
        assert!(matches!(source, KeySource::Generated { .. }));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(calls.get(), 2);
        assert_ne!(pk2, pk, "a fresh key differs (seeded differently)");
        let (pk3, _, source, _) = run(root.path(), 2, 3, false, &calls);
        assert!(matches!(source, KeySource::Cached { .. }));
        assert_eq!(pk3, pk2, "the cache holds the fresh key");
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_corrupt_entry_is_replaced_with_a_warning() {
        let dir_of = |root: &Path| root.join("n1024-t2-l3");
        type Corruption = (&'static str, fn(&Path));
        let corruptions: [Corruption; 4] = [
            ("truncated public key", |d| {
                std::fs::write(d.join("public.json"), "{\"format\"").unwrap();
            }),
            ("missing share", |d| {
                std::fs::remove_file(d.join("share-2.json")).unwrap();
            }),
            ("share of another holder", |d| {
                let s1 = std::fs::read_to_string(d.join("share-1.json")).unwrap();
                std::fs::remove_file(d.join("share-3.json")).unwrap();
                write_secret_file(&d.join("share-3.json"), s1.as_bytes()).unwrap();
            }),
            ("tampered secret", |d| {
                let path = d.join("share-1.json");
                let s = std::fs::read_to_string(&path).unwrap();
                let at = s.find("\"secret_share\": \"").unwrap() + 17;
                let digit = if &s[at..at + 1] == "1" { "2" } else { "1" };
                let s = format!("{}{digit}{}", &s[..at], &s[at + 1..]);
                std::fs::write(&path, s).unwrap();
            }),
        ];
        for (what, corrupt) in corruptions {
            let root = tempfile::tempdir().unwrap();
            let calls = Cell::new(0);
            run(root.path(), 2, 3, false, &calls);
            corrupt(&dir_of(root.path()));
            let (pk, shares, source, warnings) = run(root.path(), 2, 3, false, &calls);
            assert!(matches!(source, KeySource::Generated { .. }), "{what}");
            assert_eq!(warnings.len(), 1, "{what}: {warnings:?}");
            assert!(warnings[0].contains("unusable"), "{what}: {warnings:?}");
            assert_eq!(calls.get(), 2, "{what}");
            // The replacement loads cleanly.
            let (pk2, shares2, source, warnings) = run(root.path(), 2, 3, false, &calls);
            assert!(matches!(source, KeySource::Cached { .. }), "{what}");
            assert!(warnings.is_empty(), "{what}: {warnings:?}");
            assert_eq!(pk2, pk);
            assert_eq!(shares2.len(), shares.len());
        }
    }

    #[test]
    fn an_unwritable_cache_still_returns_the_key() {
        let root = tempfile::tempdir().unwrap();
        // A file where the cache directory should be.
        let blocked = root.path().join("keys");
        std::fs::write(&blocked, "not a directory").unwrap();
        let calls = Cell::new(0);
        let (pk, shares, source, warnings) = run(&blocked, 2, 3, false, &calls);
        assert!(matches!(source, KeySource::Generated { .. }));
        assert_eq!((pk.holders(), shares.len()), (3, 3));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("cannot cache"), "{warnings:?}");
    }

    #[test]
    fn a_dealer_failure_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let result =
            load_or_generate_in(root.path(), BITS, 2, 3, false, || bail!("no primes today"));
        assert!(result.unwrap_err().to_string().contains("no primes today"));
    }

    #[test]
    fn key_source_serialises_with_a_kind_tag() {
        let json = serde_json::to_value(KeySource::Generated { seconds: 1.5 }).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "generated", "seconds": 1.5})
        );
        let json = serde_json::to_value(KeySource::Cached { path: "/c".into() }).unwrap();
        assert_eq!(json, serde_json::json!({"kind": "cached", "path": "/c"}));
    }

    #[test]
    fn invalid_parameters_fail_before_any_search() {
        let err = load_or_generate(1024, 4, 3, false, &mut Entropy::os()).unwrap_err();
        assert!(err.to_string().contains("threshold 4 of 3"), "{err}");
    }
}
