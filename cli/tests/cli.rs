#![allow(clippy::unwrap_used)]
//! End-to-end tests of the `spddl` binary: `spddl keygen` and the `spddl crypto` toolbox run
//! as separate processes over files in a temporary directory, the way an operator would.
//!
//! Every failure must be one `error: …` line on standard error that names the file or holder
//! at fault, never a panic; warnings are `warning: …` lines and do not change the exit status.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use num_bigint::BigUint;
use serde_json::Value;
use tempfile::TempDir;

/// The context the honest decryption shares of these tests are made for.
const CONTEXT: &str = "round 7";

/// What one run of the binary did.
struct Run {
    /// The exit code; `None` when the process was killed by a signal.
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// The command line, for assertion messages.
    shown: String,
}

impl Run {
    fn context(&self) -> String {
        format!(
            "{}\nexit code: {:?}\nstdout:\n{}\nstderr:\n{}",
            self.shown, self.code, self.stdout, self.stderr
        )
    }

    fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }

    /// Asserts that the run succeeded with nothing on standard error.
    fn succeeded_quietly(self) -> Self {
        self.succeeded_with_warnings(0)
    }

    /// Asserts that the run succeeded and printed exactly `n` warning lines, and nothing
    /// else, on standard error.
    fn succeeded_with_warnings(self, n: usize) -> Self {
        assert_eq!(self.code, Some(0), "expected success: {}", self.context());
        let lines = self.stderr_lines();
        assert_eq!(lines.len(), n, "warnings: {}", self.context());
        for line in lines {
            assert!(line.starts_with("warning: "), "{}", self.context());
        }
        self
    }

    /// Asserts a clean failure: a non-zero exit code (not a signal), and a standard error
    /// that is exactly one `error: ` line naming every string of `names`, with no sign of a
    /// panic. Returns that line.
    fn failed(&self, names: &[&str]) -> String {
        self.failed_after_warnings(0, names)
    }

    /// Like [`Run::failed`], but the error line may be preceded by `warnings` lines that
    /// start with `warning: `.
    fn failed_after_warnings(&self, warnings: usize, names: &[&str]) -> String {
        let cx = self.context();
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "expected failure: {cx}"
        );
        assert!(!self.stderr.contains("panicked"), "{cx}");
        assert!(!self.stderr.contains("RUST_BACKTRACE"), "{cx}");
        let lines = self.stderr_lines();
        assert_eq!(lines.len(), warnings + 1, "stderr line count: {cx}");
        for line in &lines[..warnings] {
            assert!(line.starts_with("warning: "), "{cx}");
        }
        let error = lines[warnings];
        assert!(error.starts_with("error: "), "{cx}");
        for name in names {
            assert!(
                error.contains(name),
                "error line does not name {name:?}: {cx}"
            );
        }
        error.to_string()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.context()))
    }
}

/// Runs `spddl` with `args`, without a backtrace variable so that a panic would show its
/// `RUST_BACKTRACE` hint.
fn spddl<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let output = Command::new(env!("CARGO_BIN_EXE_spddl"))
        .args(&args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap();
    let shown = std::iter::once("spddl".to_string())
        .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
        shown,
    }
}

/// A path as a command-line argument.
fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A string that occurs in every message about `p`: its file name.
fn name(p: &Path) -> &str {
    p.file_name().unwrap().to_str().unwrap()
}

fn write(path: &Path, contents: &str) -> PathBuf {
    std::fs::write(path, contents).unwrap();
    path.to_owned()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn write_json(path: &Path, doc: &Value) -> PathBuf {
    write(path, &serde_json::to_string_pretty(doc).unwrap())
}

fn hex(s: &Value) -> BigUint {
    BigUint::parse_bytes(s.as_str().unwrap().as_bytes(), 16).unwrap()
}

/// Makes `path` readable by its owner only, so that reading it as a key share draws no
/// warning about its permissions.
fn owner_only(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A key dealt by `spddl keygen --bits 1024 --insecure` into its own directory, with a
/// scratch directory for the files made under it.
struct Key {
    /// Owns the directories; removed on drop.
    _root: TempDir,
    public: PathBuf,
    work: PathBuf,
    n: BigUint,
}

impl Key {
    fn deal(t: usize, l: usize) -> Key {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("key");
        let (ts, ls) = (t.to_string(), l.to_string());
        spddl([
            "keygen",
            "--bits",
            "1024",
            "--insecure",
            "--threshold",
            &ts,
            "--holders",
            &ls,
            "--out",
            arg(&dir),
        ])
        .succeeded_quietly();
        let public = dir.join("public.json");
        let n = hex(&read_json(&public)["n"]);
        let work = root.path().join("work");
        std::fs::create_dir(&work).unwrap();
        Key {
            _root: root,
            public,
            work,
            n,
        }
    }

    fn share(&self, i: usize) -> PathBuf {
        self.public.with_file_name(format!("share-{i}.json"))
    }

    fn file(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    fn key_id(&self) -> Value {
        read_json(&self.public)["key_id"].clone()
    }

    /// Runs `spddl crypto <cmd> -k public.json <rest…>`.
    fn crypto(&self, cmd: &str, rest: &[&str]) -> Run {
        let mut args = vec!["crypto", cmd, "-k", arg(&self.public)];
        args.extend_from_slice(rest);
        spddl(args)
    }

    /// Runs a toolbox command that must succeed quietly, saving its output as `out`.
    fn save(&self, out: &str, cmd: &str, rest: &[&str]) -> PathBuf {
        let run = self.crypto(cmd, rest).succeeded_quietly();
        write(&self.file(out), &run.stdout)
    }

    fn encrypt(&self, out: &str, values: &[String]) -> PathBuf {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        self.save(out, "encrypt", &values)
    }

    /// Holder `i`'s decryption share of `cts` under [`CONTEXT`], saved as `ds<i>-<out>`.
    fn partial_decrypt(&self, i: usize, cts: &Path) -> PathBuf {
        let out = format!("ds{i}-{}", name(cts));
        let share = self.share(i);
        self.save(
            &out,
            "partial-decrypt",
            &["-s", arg(&share), "--context", CONTEXT, arg(cts)],
        )
    }

    /// `spddl crypto combine -c cts shares…`, with the context taken from the share files.
    fn combine(&self, cts: &Path, shares: &[&PathBuf]) -> Run {
        let mut rest = vec!["-c", arg(cts)];
        rest.extend(shares.iter().map(|p| arg(p)));
        self.crypto("combine", &rest)
    }

    fn verify(&self, cts: &Path, shares: &[&PathBuf]) -> Run {
        let mut rest = vec!["-c", arg(cts)];
        rest.extend(shares.iter().map(|p| arg(p)));
        self.crypto("verify-share", &rest)
    }

    /// A copy of decryption share `ds` whose first partial decryption is doubled mod n²:
    /// still a unit, but no longer `c^{2Δs_i}`.
    fn tamper(&self, ds: &Path) -> PathBuf {
        let mut doc = read_json(ds);
        let n2 = &self.n * &self.n;
        let bad = (hex(&doc["partials"][0]) * 2u32) % n2;
        doc["partials"][0] = bad.to_str_radix(16).into();
        write_json(&self.file(&format!("tampered-{}", name(ds))), &doc)
    }

    /// A copy of the ciphertext file `cts` whose ciphertext at position 1 is `value`.
    fn with_ciphertext(&self, out: &str, cts: &Path, value: &BigUint) -> PathBuf {
        let mut doc = read_json(cts);
        doc["ciphertexts"][1] = value.to_str_radix(16).into();
        write_json(&self.file(out), &doc)
    }
}

fn plaintexts(combined: &Value) -> Vec<String> {
    combined["plaintexts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn holders_used(combined: &Value) -> Vec<usize> {
    combined["holders_used"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| usize::try_from(v.as_u64().unwrap()).unwrap())
        .collect()
}

fn decimal(values: &[BigUint]) -> Vec<String> {
    values.iter().map(BigUint::to_string).collect()
}

/// All `k`-subsets of `1..=n`, in lexicographic order.
fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    if k == 0 {
        return vec![Vec::new()];
    }
    (k..=n)
        .flat_map(|last| {
            subsets(last - 1, k - 1).into_iter().map(move |mut s| {
                s.push(last);
                s
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// 1. The whole toolbox, end to end.
// ---------------------------------------------------------------------------------------

/// Encrypts two vectors (with 0, 2^200 and n − 1 among them), adds them, multiplies the sum
/// by a scalar, and decrypts with every `t`-subset of holders, with `t + 1` holders, and not
/// with `t − 1`.
fn toolbox_walk(t: usize, l: usize) {
    let key = Key::deal(t, l);
    let n = &key.n;
    let big = BigUint::from(2u32).pow(200);
    let a = [
        BigUint::from(0u32),
        BigUint::from(5u32),
        big.clone(),
        n - 1u32,
    ];
    let b = [
        BigUint::from(7u32),
        BigUint::from(0u32),
        &big + 1u32,
        BigUint::from(2u32),
    ];
    let k = BigUint::from(3u32);
    let sums: Vec<BigUint> = a.iter().zip(&b).map(|(x, y)| (x + y) % n).collect();
    let products: Vec<BigUint> = sums.iter().map(|s| (s * &k) % n).collect();
    // The wrap-around is part of the point: (n − 1) + 2 = 1 and 3·1 = 3 (mod n).
    assert_eq!(decimal(&products[3..]), ["3"]);

    let a_file = key.encrypt("a.json", &decimal(&a));
    let b_file = key.encrypt("b.json", &decimal(&b));
    let sum_file = key.save("sum.json", "add", &[arg(&a_file), arg(&b_file)]);
    let product_file = key.save("product.json", "mul", &[arg(&sum_file), "--by", "3"]);
    let doc = read_json(&product_file);
    assert_eq!(doc["format"], "spddl-ciphertexts");
    assert_eq!(doc["key_id"], key.key_id());
    assert_eq!(doc["ciphertexts"].as_array().unwrap().len(), 4);

    // Every holder decrypts the product; all shares verify and name their holder and file.
    let ds: Vec<PathBuf> = (1..=l)
        .map(|i| key.partial_decrypt(i, &product_file))
        .collect();
    let all: Vec<&PathBuf> = ds.iter().collect();
    let report = key.verify(&product_file, &all).succeeded_quietly().json();
    let rows = report["shares"].as_array().unwrap();
    assert_eq!(rows.len(), l);
    for (i, row) in (1..=l).zip(rows) {
        assert_eq!(row["holder"], i, "{report}");
        assert_eq!(row["valid"], true, "{report}");
        assert_eq!(row["reason"], Value::Null, "{report}");
        assert!(row["file"].as_str().unwrap().ends_with(name(&ds[i - 1])));
    }

    // Any t holders decrypt, and say who they were.
    let subsets = subsets(l, t);
    assert!(subsets.len() >= 3);
    for subset in &subsets {
        let chosen: Vec<&PathBuf> = subset.iter().map(|&i| &ds[i - 1]).collect();
        let combined = key
            .combine(&product_file, &chosen)
            .succeeded_quietly()
            .json();
        assert_eq!(
            plaintexts(&combined),
            decimal(&products),
            "holders {subset:?}"
        );
        assert_eq!(holders_used(&combined), *subset);
        assert_eq!(combined["rejected"], serde_json::json!([]));
        assert_eq!(combined["key_id"], key.key_id());
    }

    // t + 1 shares, given in reverse order and with an explicit --context: the same result,
    // from t of them.
    let more: Vec<&PathBuf> = ds[..=t].iter().rev().collect();
    let mut rest = vec!["-c", arg(&product_file), "--context", CONTEXT];
    rest.extend(more.iter().map(|p| arg(p)));
    let combined = key.crypto("combine", &rest).succeeded_quietly().json();
    assert_eq!(plaintexts(&combined), decimal(&products));
    let used = holders_used(&combined);
    assert_eq!(used.len(), t, "{combined}");
    assert!(used.iter().all(|h| (1..=t + 1).contains(h)), "{combined}");

    // t − 1 shares are not enough.
    let run = key.combine(&product_file, &all[..t - 1]);
    run.failed(&[&format!(
        "not enough valid decryption shares: {} of threshold {t}",
        t - 1
    )]);
    assert_eq!(run.stdout, "");

    // The inputs themselves decrypt too: fresh encryptions and the plain sum.
    for (file, expected) in [(&a_file, decimal(&a)), (&sum_file, decimal(&sums))] {
        let shares: Vec<PathBuf> = (l - t + 1..=l)
            .map(|i| key.partial_decrypt(i, file))
            .collect();
        let shares: Vec<&PathBuf> = shares.iter().collect();
        let combined = key.combine(file, &shares).succeeded_quietly().json();
        assert_eq!(plaintexts(&combined), expected, "{}", name(file));
    }
}

#[test]
fn toolbox_walk_with_a_2_of_3_key() {
    toolbox_walk(2, 3);
}

#[test]
fn toolbox_walk_with_a_3_of_5_key() {
    toolbox_walk(3, 5);
}

#[test]
fn add_takes_many_files_and_mul_reduces_the_scalar_mod_n() {
    let key = Key::deal(2, 3);
    let x = key.encrypt("x.json", &["10".into(), "1".into()]);
    let y = key.encrypt("y.json", &["20".into(), "2".into()]);
    let sum = key.save("sum.json", "add", &[arg(&x), arg(&y), arg(&x)]);
    // k = n + 2 acts as 2.
    let k = (&key.n + 2u32).to_string();
    let doubled = key.save("doubled.json", "mul", &[arg(&sum), "--by", &k]);
    let zero = key.save("zero.json", "mul", &[arg(&sum), "--by", "0"]);
    for (file, expected) in [(&doubled, ["80", "8"]), (&zero, ["0", "0"])] {
        let shares = [key.partial_decrypt(1, file), key.partial_decrypt(3, file)];
        let shares: Vec<&PathBuf> = shares.iter().collect();
        let combined = key.combine(file, &shares).succeeded_quietly().json();
        assert_eq!(plaintexts(&combined), expected, "{}", name(file));
    }
}

// ---------------------------------------------------------------------------------------
// 2. keygen.
// ---------------------------------------------------------------------------------------

/// Asserts that keygen's standard output names every file it wrote into `dir`, and that
/// these are exactly public.json and share-1..=ℓ.json.
fn assert_names_every_file(stdout: &str, dir: &Path, l: usize) {
    let mut expected: Vec<PathBuf> = vec![dir.join("public.json")];
    expected.extend((1..=l).map(|i| dir.join(format!("share-{i}.json"))));
    for (i, path) in expected.iter().enumerate() {
        let wrote = format!("wrote {}", path.display());
        assert!(
            stdout.contains(&wrote),
            "stdout does not say {wrote:?}:\n{stdout}"
        );
        if i > 0 {
            assert!(stdout.contains(&format!("holder {i}")), "{stdout}");
        }
    }
    let mut on_disk: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    on_disk.sort();
    expected.sort();
    assert_eq!(on_disk, expected);
}

#[cfg(unix)]
#[test]
fn keygen_writes_owner_only_shares_into_a_private_directory() {
    let root = tempfile::tempdir().unwrap();
    // Two levels that do not exist yet: both are created private.
    let dir = root.path().join("keys").join("k1");
    let run = spddl([
        "keygen",
        "--bits",
        "1024",
        "--insecure",
        "-t",
        "2",
        "-l",
        "4",
        "--out",
        arg(&dir),
    ])
    .succeeded_quietly();
    assert_names_every_file(&run.stdout, &dir, 4);
    assert!(run.stdout.contains("2-of-4"), "{}", run.stdout);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(dir.parent().unwrap()), 0o700);
    for i in 1..=4 {
        assert_eq!(
            mode(&dir.join(format!("share-{i}.json"))),
            0o600,
            "share {i}"
        );
    }

    let public = read_json(&dir.join("public.json"));
    assert_eq!(public["format"], "spddl-public-key");
    assert_eq!(public["version"], 1);
    assert_eq!(public["threshold"], 2);
    assert_eq!(public["holders"], 4);
    assert_eq!(public["bits"], 1024);
    assert_eq!(hex(&public["n"]).bits(), 1024);
    assert_eq!(public["verification_keys"].as_array().unwrap().len(), 4);
    assert!(run.stdout.contains(public["key_id"].as_str().unwrap()));
    for i in 1..=4 {
        let share = read_json(&dir.join(format!("share-{i}.json")));
        assert_eq!(share["format"], "spddl-key-share");
        assert_eq!(share["index"], i);
        assert_eq!(share["key_id"], public["key_id"]);
    }

    // A directory that already exists keeps its mode; the shares in it are still 0600.
    let existing = root.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let run = spddl([
        "keygen",
        "--bits",
        "1024",
        "--insecure",
        "-t",
        "1",
        "-l",
        "1",
        "--out",
        arg(&existing),
    ])
    .succeeded_quietly();
    assert_names_every_file(&run.stdout, &existing, 1);
    assert_eq!(mode(&existing), 0o755);
    assert_eq!(mode(&existing.join("share-1.json")), 0o600);
}

#[test]
fn keygen_never_overwrites_an_existing_key() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("k");
    let keygen = |dir: &Path, l: &str| {
        spddl([
            "keygen",
            "--bits",
            "1024",
            "--insecure",
            "-t",
            "1",
            "-l",
            l,
            "--out",
            arg(dir),
        ])
    };
    keygen(&dir, "3").succeeded_quietly();
    let before: Vec<String> = ["public.json", "share-1.json", "share-3.json"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap())
        .collect();

    let run = keygen(&dir, "3");
    run.failed(&[
        &dir.join("public.json").display().to_string(),
        "already exists",
    ]);
    assert_eq!(run.stdout, "");
    let after: Vec<String> = ["public.json", "share-1.json", "share-3.json"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap())
        .collect();
    assert_eq!(before, after, "an existing key was modified");

    // Only one share file in the way: it is named, and nothing is written.
    let partial = root.path().join("partial");
    std::fs::create_dir(&partial).unwrap();
    write(&partial.join("share-2.json"), "mine");
    keygen(&partial, "3").failed(&[&partial.join("share-2.json").display().to_string()]);
    assert_eq!(
        std::fs::read_to_string(partial.join("share-2.json")).unwrap(),
        "mine"
    );
    assert!(!partial.join("public.json").exists());
    assert!(!partial.join("share-1.json").exists());
}

#[test]
fn keygen_refuses_bad_parameters_and_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["--bits", "1024", "--insecure", "-t", "3", "-l", "2"],
            &["threshold 3 of 2"],
        ),
        (
            &["--bits", "1024", "--insecure", "-t", "0", "-l", "3"],
            &["threshold 0"],
        ),
        (
            &["--bits", "1024", "-t", "2", "-l", "3"],
            &["1024-bit", "--insecure"],
        ),
        (
            &["--bits", "512", "--insecure", "-t", "2", "-l", "3"],
            &["512"],
        ),
        (
            &["--bits", "1024", "--insecure", "-t", "2", "-l", "1025"],
            &["1025"],
        ),
    ];
    for (i, (options, names)) in cases.iter().enumerate() {
        let dir = root.path().join(format!("k{i}"));
        let mut args = vec!["keygen"];
        args.extend_from_slice(options);
        args.extend_from_slice(&["--out", arg(&dir)]);
        let run = spddl(args);
        run.failed(names);
        assert_eq!(run.stdout, "");
        assert!(!dir.exists(), "{} was created", dir.display());
    }
}

#[cfg(unix)]
#[test]
fn keygen_defaults_to_a_2048_bit_modulus() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("k2048");
    let run = spddl(["keygen", "-t", "2", "-l", "3", "--out", arg(&dir)]).succeeded_quietly();
    assert_names_every_file(&run.stdout, &dir, 3);
    assert!(run.stdout.contains("2048-bit"), "{}", run.stdout);
    let public = read_json(&dir.join("public.json"));
    assert_eq!(hex(&public["n"]).bits(), 2048);
    assert_eq!(public["bits"], 2048);
    assert_eq!(mode(&dir), 0o700);
    for i in 1..=3 {
        assert_eq!(mode(&dir.join(format!("share-{i}.json"))), 0o600);
    }
}

// ---------------------------------------------------------------------------------------
// 3. Bad input: one error line that names the culprit.
// ---------------------------------------------------------------------------------------

#[test]
fn missing_files_are_named() {
    let key = Key::deal(2, 3);
    let cts = key.encrypt("cts.json", &["1".into()]);
    let ds = key.partial_decrypt(1, &cts);
    let missing = key.file("missing.json");
    let m = arg(&missing);
    let share = key.share(1);
    let runs = [
        spddl(["crypto", "encrypt", "-k", m, "1"]),
        key.crypto("add", &[arg(&cts), m]),
        key.crypto("mul", &[m, "--by", "2"]),
        key.crypto("partial-decrypt", &["-s", m, arg(&cts)]),
        key.crypto("partial-decrypt", &["-s", arg(&share), m]),
        key.crypto("verify-share", &["-c", m, arg(&ds)]),
        key.crypto("verify-share", &["-c", arg(&cts), arg(&ds), m]),
        key.crypto("combine", &["-c", arg(&cts), arg(&ds), m]),
    ];
    for run in &runs {
        run.failed(&[m, "cannot read"]);
        assert_eq!(run.stdout, "", "{}", run.context());
    }
}

#[test]
fn malformed_json_and_wrong_format_tags_are_named() {
    let key = Key::deal(2, 3);
    let cts = key.encrypt("cts.json", &["1".into(), "2".into()]);
    let ds = key.partial_decrypt(2, &cts);
    let share = key.share(2);
    let truncated = write(&key.file("truncated.json"), "{\"format\": \"spddl-");
    let t = arg(&truncated);
    owner_only(&truncated);
    owner_only(&ds);

    for run in [
        spddl(["crypto", "encrypt", "-k", t, "1"]),
        key.crypto("mul", &[t, "--by", "2"]),
        key.crypto("partial-decrypt", &["-s", t, arg(&cts)]),
        key.crypto("verify-share", &["-c", arg(&cts), t]),
    ] {
        run.failed(&["truncated.json", "malformed"]);
    }

    // A ciphertext file whose tag was edited to another format.
    let mut doc = read_json(&cts);
    doc["format"] = "spddl-decryption-share".into();
    let retagged = write_json(&key.file("retagged.json"), &doc);
    key.crypto("add", &[arg(&cts), arg(&retagged)])
        .failed(&["retagged.json", "\"spddl-ciphertexts\""]);

    // Files given in one another's place.
    let public = key.public.clone();
    spddl(["crypto", "encrypt", "-k", arg(&cts), "1"]).failed(&["cts.json", "public key"]);
    key.crypto("mul", &[arg(&public), "--by", "2"])
        .failed(&["public.json", "ciphertexts"]);
    key.crypto("partial-decrypt", &["-s", arg(&ds), arg(&cts)])
        .failed(&[name(&ds), "key share"]);
    key.crypto("verify-share", &["-c", arg(&cts), arg(&share)])
        .failed(&["share-2.json", "decryption share"]);
    // A secret key share given where public data is expected must not be echoed.
    let secret = read_json(&share)["secret_share"]
        .as_str()
        .unwrap()
        .to_owned();
    for run in [
        spddl(["crypto", "encrypt", "-k", arg(&share), "1"]),
        key.crypto("mul", &[arg(&share), "--by", "2"]),
        key.crypto("combine", &["-c", arg(&cts), arg(&share)]),
    ] {
        run.failed(&["share-2.json"]);
        assert!(!run.stderr.contains(&secret[..32]), "{}", run.context());
    }

    // A public key whose threshold was edited no longer matches its key id.
    let mut doc = read_json(&public);
    doc["threshold"] = 3.into();
    let edited = write_json(&key.file("edited-public.json"), &doc);
    spddl(["crypto", "encrypt", "-k", arg(&edited), "1"]).failed(&["edited-public.json", "key_id"]);

    // A decryption share naming a holder the key does not have.
    let mut doc = read_json(&ds);
    doc["holder"] = 9.into();
    let stranger = write_json(&key.file("holder-9.json"), &doc);
    key.verify(&cts, &[&stranger])
        .failed(&["holder-9.json", "share index 9"]);
}

#[test]
fn material_of_another_key_is_refused() {
    let key = Key::deal(2, 3);
    let other = Key::deal(2, 3);
    let cts = key.encrypt("cts.json", &["1".into()]);
    let ds = key.partial_decrypt(1, &cts);
    let foreign_cts = other.encrypt("foreign-cts.json", &["1".into()]);
    let foreign_ds = other.partial_decrypt(1, &foreign_cts);
    let foreign_share = other.share(1);

    for run in [
        key.crypto("add", &[arg(&cts), arg(&foreign_cts)]),
        key.crypto("mul", &[arg(&foreign_cts), "--by", "2"]),
        key.crypto(
            "partial-decrypt",
            &["-s", arg(&key.share(1)), arg(&foreign_cts)],
        ),
        key.crypto("combine", &["-c", arg(&foreign_cts), arg(&ds)]),
    ] {
        run.failed(&["foreign-cts.json", "made under key"]);
    }
    key.crypto("partial-decrypt", &["-s", arg(&foreign_share), arg(&cts)])
        .failed(&[arg(&foreign_share), "key share made under key"]);
    key.verify(&cts, &[&ds, &foreign_ds])
        .failed(&[name(&foreign_ds), "decryption share made under key"]);
}

#[test]
fn ciphertexts_outside_z_star_n2_are_refused() {
    let key = Key::deal(2, 3);
    let cts = key.encrypt("cts.json", &["1".into(), "2".into(), "3".into()]);
    let n = &key.n;
    let cases = [
        ("zero.json", BigUint::from(0u32), "zero"),
        ("n-squared.json", n * n, "not below n²"),
        ("n-squared-plus-1.json", n * n + 1u32, "not below n²"),
        // gcd(n, n) = n: as bad as a multiple of p.
        ("n.json", n.clone(), "shares a factor with n"),
        ("3n.json", n * 3u32, "shares a factor with n"),
    ];
    let share = key.share(1);
    for (file, value, why) in cases {
        let bad = key.with_ciphertext(file, &cts, &value);
        let b = arg(&bad);
        for run in [
            key.crypto("add", &[arg(&cts), b]),
            key.crypto("mul", &[b, "--by", "2"]),
            key.crypto("partial-decrypt", &["-s", arg(&share), b]),
        ] {
            run.failed(&[file, "position 1", why]);
            assert_eq!(run.stdout, "");
        }
    }
    let not_hex = key.file("not-hex.json");
    let mut doc = read_json(&cts);
    doc["ciphertexts"][2] = "xyz".into();
    write_json(&not_hex, &doc);
    key.crypto("mul", &[arg(&not_hex), "--by", "2"])
        .failed(&["not-hex.json", "ciphertexts[2]"]);
}

#[test]
fn encrypt_refuses_values_that_are_not_below_n() {
    let key = Key::deal(2, 3);
    let n = key.n.to_string();
    let n_plus_1 = (&key.n + 1u32).to_string();
    let huge = BigUint::from(2u32).pow(1100).to_string();
    let syntax = "is not a non-negative decimal integer";
    let range = "-bit modulus n";
    for value in ["-1", "-0", "abc", "1.5", "0x10", "+5", " 1", ""] {
        // A good value first: one bad value fails the whole command.
        let run = key.crypto("encrypt", &["7", "--", value]);
        run.failed(&[&format!("value '{value}' {syntax}")]);
        assert_eq!(run.stdout, "", "{}", run.context());
    }
    for value in [&n, &n_plus_1, &huge] {
        let run = key.crypto("encrypt", &["7", "--", value]);
        run.failed(&[&format!("value {value}: "), range]);
        assert_eq!(run.stdout, "", "{}", run.context());
    }
    // The largest value that fits is fine.
    let n_minus_1 = (&key.n - 1u32).to_string();
    key.crypto("encrypt", &[&n_minus_1]).succeeded_quietly();

    let cts = key.encrypt("cts.json", &["1".into()]);
    key.crypto("mul", &[arg(&cts), "--by", "x"])
        .failed(&["scalar 'x'"]);
}

#[test]
fn too_few_shares_are_refused() {
    let key = Key::deal(3, 5);
    let cts = key.encrypt("cts.json", &["42".into()]);
    let ds: Vec<PathBuf> = (1..=5).map(|i| key.partial_decrypt(i, &cts)).collect();
    let run = key.combine(&cts, &[&ds[4], &ds[1]]);
    run.failed(&["not enough valid decryption shares: 2 of threshold 3 (from holders 2, 5)"]);
    assert_eq!(run.stdout, "");
    // The same share twice does not count twice, and blames no one.
    let run = key.combine(&cts, &[&ds[4], &ds[1], &ds[4]]);
    run.failed(&["not enough valid decryption shares: 2 of threshold 3 (from holders 2, 5)"]);
    assert!(
        !run.stderr.contains("rejected holders"),
        "{}",
        run.context()
    );
}

#[test]
fn a_tampered_partial_decryption_is_caught_and_its_holder_named() {
    let key = Key::deal(2, 3);
    let cts = key.encrypt("cts.json", &["11".into(), "22".into()]);
    let good1 = key.partial_decrypt(1, &cts);
    let good3 = key.partial_decrypt(3, &cts);
    let bad3 = key.tamper(&good3);

    let run = key.verify(&cts, &[&good1, &bad3]);
    run.failed(&[name(&bad3), "holder 3", "failed verification"]);
    let report = run.json();
    let rows = report["shares"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["holder"], 1, "{report}");
    assert_eq!(rows[0]["valid"], true, "{report}");
    assert_eq!(rows[1]["holder"], 3, "{report}");
    assert_eq!(rows[1]["valid"], false, "{report}");
    assert!(
        rows[1]["reason"].as_str().unwrap().contains("holder 3"),
        "{report}"
    );
    assert!(rows[1]["file"].as_str().unwrap().ends_with(name(&bad3)));

    // Alone, the tampered share is still refused.
    key.verify(&cts, &[&bad3])
        .failed(&[name(&bad3), "holder 3"]);

    // With only t − 1 good shares, combine refuses and blames holder 3.
    let run = key.combine(&cts, &[&bad3, &good1]);
    run.failed(&[
        "not enough valid decryption shares: 1 of threshold 2",
        "rejected holders: 3",
    ]);
    assert_eq!(run.stdout, "");

    // A share whose partials do not match the ciphertexts in number.
    let mut doc = read_json(&good1);
    doc["partials"].as_array_mut().unwrap().pop();
    let short = write_json(&key.file("short.json"), &doc);
    let run = key.verify(&cts, &[&short]);
    run.failed(&["short.json", "holder 1"]);
    assert_eq!(run.json()["shares"][0]["valid"], false);

    // Shares made for other ciphertexts do not decrypt these.
    let others = key.encrypt("others.json", &["11".into(), "23".into()]);
    let run = key.verify(&others, &[&good1, &good3]);
    run.failed(&["2 shares failed verification", name(&good1), name(&good3)]);
}

#[test]
fn a_share_replayed_under_another_context_fails() {
    let key = Key::deal(2, 3);
    let cts = key.encrypt("cts.json", &["5".into()]);
    let ds1 = key.partial_decrypt(1, &cts);
    let ds2 = key.partial_decrypt(2, &cts);

    // Checked against another --context: a warning per share, then one error naming both.
    let run = key.crypto(
        "verify-share",
        &[
            "-c",
            arg(&cts),
            "--context",
            "round 8",
            arg(&ds1),
            arg(&ds2),
        ],
    );
    run.failed_after_warnings(2, &[name(&ds1), name(&ds2), "failed verification"]);
    for (line, ds) in run.stderr_lines().iter().zip([&ds1, &ds2]) {
        assert!(line.contains(name(ds)), "{}", run.context());
        assert!(line.contains("'round 8'"), "{}", run.context());
    }
    for row in run.json()["shares"].as_array().unwrap() {
        assert_eq!(row["valid"], false);
    }
    let run = key.crypto(
        "combine",
        &[
            "-c",
            arg(&cts),
            "--context",
            "round 8",
            arg(&ds1),
            arg(&ds2),
        ],
    );
    run.failed_after_warnings(2, &["not enough valid decryption shares: 0 of threshold 2"]);

    // The recorded context relabelled to match: no warning, and the proof still fails.
    let mut doc = read_json(&ds2);
    doc["context"] = "726f756e642038".into(); // "round 8"
    let relabelled = write_json(&key.file("relabelled.json"), &doc);
    let run = key.crypto(
        "verify-share",
        &["-c", arg(&cts), "--context", "round 8", arg(&relabelled)],
    );
    run.failed(&["relabelled.json", "holder 2"]);

    // Shares recorded for different contexts are not mixed silently.
    key.combine(&cts, &[&ds1, &relabelled])
        .failed(&["relabelled.json", name(&ds1), "--context"]);
}

// ---------------------------------------------------------------------------------------
// 4. Combining around a bad share.
// ---------------------------------------------------------------------------------------

#[test]
fn combine_skips_a_tampered_share_and_names_its_holder() {
    let key = Key::deal(2, 3);
    let values = ["0".to_string(), "123456789".into()];
    let cts = key.encrypt("cts.json", &values);
    let good1 = key.partial_decrypt(1, &cts);
    let good2 = key.partial_decrypt(2, &cts);
    let bad3 = key.tamper(&key.partial_decrypt(3, &cts));

    for order in [[&bad3, &good1, &good2], [&good2, &bad3, &good1]] {
        let run = key.combine(&cts, &order).succeeded_with_warnings(1);
        assert!(run.stderr.contains("holder 3"), "{}", run.context());
        let combined = run.json();
        assert_eq!(plaintexts(&combined), values);
        assert_eq!(holders_used(&combined), [1, 2]);
        let rejected = combined["rejected"].as_array().unwrap();
        assert_eq!(rejected.len(), 1, "{combined}");
        assert!(
            rejected[0].as_str().unwrap().contains("holder 3"),
            "{combined}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 5. Loose key-share permissions.
// ---------------------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn a_key_share_readable_by_others_works_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let key = Key::deal(2, 3);
    let cts = key.encrypt("cts.json", &["31".into()]);
    let share = key.share(2);
    std::fs::set_permissions(&share, std::fs::Permissions::from_mode(0o644)).unwrap();

    let run = key
        .crypto(
            "partial-decrypt",
            &["-s", arg(&share), "--context", CONTEXT, arg(&cts)],
        )
        .succeeded_with_warnings(1);
    let warning = run.stderr_lines()[0].to_owned();
    assert!(warning.contains(arg(&share)), "{warning}");
    assert!(warning.contains("644"), "{warning}");
    let loose = write(&key.file("ds2-loose.json"), &run.stdout);

    // The share it made is a good one.
    let ds1 = key.partial_decrypt(1, &cts);
    let combined = key
        .combine(&cts, &[&ds1, &loose])
        .succeeded_quietly()
        .json();
    assert_eq!(plaintexts(&combined), ["31"]);

    // Back to 0600: no warning.
    std::fs::set_permissions(&share, std::fs::Permissions::from_mode(0o600)).unwrap();
    key.partial_decrypt(2, &cts);
}

#[test]
fn partial_decrypt_of_an_empty_file_names_that_file() {
    let key = Key::deal(2, 3);
    let cts = key.encrypt("cts.json", &["1".into()]);
    let mut doc = read_json(&cts);
    doc["ciphertexts"] = serde_json::json!([]);
    let empty = write_json(&key.file("empty.json"), &doc);
    let share = key.share(1);
    let run = key.crypto("partial-decrypt", &["-s", arg(&share), arg(&empty)]);
    let line = run.failed(&["empty.json", "no ciphertexts"]);
    assert!(!line.contains("share-1.json"), "{line}");
}

#[test]
fn bench_crypto_json_prints_every_operation_with_a_positive_rate() {
    let run = spddl([
        "bench",
        "crypto",
        "--bits",
        "1024",
        "--batch",
        "2",
        "--seconds",
        "0.01",
        "--params",
        "1000",
        "--clients",
        "4",
        "--json",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.context());
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for op in [
        "keygen",
        "encrypt",
        "encrypt_textbook",
        "add",
        "sum",
        "partial_decrypt",
        "partial_decrypt_with_proof",
        "verify_share",
        "combine",
        "modexp_full",
        "signature_verify",
        "signature_verify_batch",
    ] {
        let line = lines
            .iter()
            .find(|l| l["op"] == op)
            .unwrap_or_else(|| panic!("no {op} line: {}", run.context()));
        assert_eq!(line["bits"], 1024);
        assert!(line["ops_per_s"].as_f64().unwrap() > 0.0, "{op}: {line}");
    }
    let projected = lines.iter().find(|l| l["op"] == "projected_round").unwrap();
    // 1024-bit plaintexts, 16-bit values + 2 bits of head-room for 4 clients: ⌊1023/18⌋ = 56
    // slots, so 1000 parameters need 18 ciphertexts.
    assert_eq!(projected["slots"], 56);
    assert_eq!(projected["ciphertexts_per_client"], 18.0);
}
