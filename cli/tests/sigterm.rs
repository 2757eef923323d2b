#![allow(clippy::unwrap_used)]
#![cfg(unix)]
//! SIGTERM — what systemd, Docker and Kubernetes send — stops every role process of a
//! deployment as cleanly as Ctrl-C: exit code 0, and one log line saying which signal came.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use spddl_crypto::testing::test_key;
use spddl_experiments::deploy::{self, InitOptions};
use spddl_experiments::scenario::Scenario;

/// A role process whose standard error is read line by line.
struct Process {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Process {
    fn start(role: &str, config: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_spddl"))
            .args([role, "--config", config.to_str().unwrap()])
            // The debug line of `spddl::deploy` says when the signal handlers are in place.
            .env("RUST_LOG", "info,spddl::deploy=debug")
            .env("NO_COLOR", "1")
            .env_remove("RUST_BACKTRACE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Process {
            name: format!("{role} {}", config.display()),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (up to a minute, generously) for a log line containing `text`.
    fn wait_for(&mut self, text: &str) {
        while !self.seen.iter().any(|l| l.contains(text)) {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("{}: no line with {text:?}: {:#?}", self.name, self.seen),
            }
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit (up to a minute) and returns the exit code (`None`: killed by a
    /// signal) and every line of standard error.
    fn exit(mut self) -> (Option<i32>, Vec<String>, String) {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The reader thread ends with the pipe.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    self.seen.push(line);
                }
                return (status.code(), self.seen, self.name);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!(
            "{}: still running a minute after the signal: {:#?}",
            self.name, self.seen
        );
    }
}

fn deployment(root: &Path) -> PathBuf {
    let out = root.join("dep");
    deploy::init(InitOptions {
        scenario: Scenario::default(),
        out: out.clone(),
        host: "127.0.0.1".into(),
        base_port: deploy::free_loopback_ports(4).unwrap(),
        key: Some(test_key(2048, 3, 5, 4)),
        // Nobody completes a round here: the aggregator waits, and stops only on a signal.
        collect_timeout_s: 600.0,
        share_timeout_s: 30.0,
    })
    .unwrap();
    out
}

fn assert_stopped_by(exit: (Option<i32>, Vec<String>, String), signal: &str) {
    let (code, lines, name) = exit;
    assert_eq!(code, Some(0), "{name}: {lines:#?}");
    let said: Vec<&String> = lines.iter().filter(|l| l.contains(signal)).collect();
    assert_eq!(said.len(), 1, "{name}: one line about {signal}: {lines:#?}");
    assert!(
        said[0].contains(&format!("{signal}: stopping")),
        "{name}: {said:?}"
    );
    for sign in ["panicked", "backtrace", "ERROR"] {
        assert!(
            !lines.iter().any(|l| l.contains(sign)),
            "{name}: {lines:#?}"
        );
    }
    println!("{name}: exit 0 after {signal}: {}", said[0]);
}

#[test]
fn sigterm_stops_every_role_as_ctrl_c_does() {
    let root = tempfile::tempdir().unwrap();
    let dep = deployment(root.path());
    let ready = "handlers installed";
    let mut aggregator = Process::start("aggregator", &dep.join("aggregator.toml"));
    aggregator.wait_for("listening");
    let mut roles = vec![
        Process::start("fog", &dep.join("fog-0.toml")),
        Process::start("fog", &dep.join("fog-1.toml")),
        Process::start("keyholder", &dep.join("holder-1.toml")),
        Process::start("client", &dep.join("client-0.toml")),
    ];
    for p in &mut roles {
        p.wait_for(ready);
    }
    roles[0].wait_for("listening");
    roles[1].wait_for("listening");
    // Ctrl-C (SIGINT) to one fog, SIGTERM to everything else: the same clean stop.
    let mut roles = roles.into_iter();
    let fog = roles.next().unwrap();
    fog.signal("INT");
    assert_stopped_by(fog.exit(), "Ctrl-C");
    for p in roles {
        p.signal("TERM");
        assert_stopped_by(p.exit(), "SIGTERM");
    }
    aggregator.signal("TERM");
    assert_stopped_by(aggregator.exit(), "SIGTERM");
}
