//! Every value of the deployment's config files, checked when the file is read and before
//! anything else happens: one [`Problem`](crate::validation::Problem) per bad value, naming the
//! field and the value.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use spddl_crypto::paillier::MAX_HOLDERS;
use spddl_proto::transport::TlsPaths;

use super::{AggregatorFile, ClientFile, FogFile, HolderFile, InitOptions};
use crate::validation::{Checker, Problems, quoted};

/// Most attempts at one round an aggregator config may ask for.
const MAX_ROUND_ATTEMPTS: u32 = 1000;

/// An address to listen on: `ip:port`, the port not 0 (a port chosen by the system could
/// not be written into the other processes' configs).
fn listen(c: &mut Checker, field: &str, value: &str) {
    match value.parse::<SocketAddr>() {
        Ok(a) if a.port() != 0 => {}
        Ok(_) => c.problem(field, quoted(value), "port 0: give the port to listen on"),
        Err(_) => c.problem(field, quoted(value), "not an ip:port to listen on"),
    }
}

/// An address to dial: `host:port` (`[v6]:port`), the port in 1..=65535.
fn dial(c: &mut Checker, field: &str, value: &str) {
    let ok = value.rsplit_once(':').is_some_and(|(host, port)| {
        !host.trim_matches(['[', ']']).is_empty()
            && !host.contains(char::is_whitespace)
            && port.parse::<u16>().is_ok_and(|p| p != 0)
    });
    c.require(
        ok,
        field,
        quoted(value),
        "not a host:port with a port in 1..=65535",
    );
}

fn path(c: &mut Checker, field: &str, value: &Path) {
    c.require(
        !value.as_os_str().is_empty(),
        field,
        quoted(&value.display().to_string()),
        "an empty path: name a file",
    );
}

fn tls(c: &mut Checker, value: Option<&TlsPaths>) {
    if let Some(t) = value {
        path(c, "tls.ca", &t.ca);
        path(c, "tls.cert", &t.cert);
        path(c, "tls.key", &t.key);
    }
}

impl AggregatorFile {
    /// Checks every field (see the module docs).
    pub fn validate(&self) -> Result<(), Problems> {
        let mut c = Checker::default();
        listen(&mut c, "listen", &self.listen);
        path(&mut c, "scenario", &self.scenario);
        path(&mut c, "public_key", &self.public_key);
        path(&mut c, "identity", &self.identity);
        path(&mut c, "registry", &self.registry);
        path(&mut c, "state", &self.state);
        c.seconds("collect_timeout_s", self.collect_timeout_s, false);
        c.seconds("share_timeout_s", self.share_timeout_s, false);
        c.seconds("linger_s", self.linger_s, true);
        c.require(
            (1..=MAX_ROUND_ATTEMPTS).contains(&self.round_attempts),
            "round_attempts",
            self.round_attempts,
            &format!("must be in 1..={MAX_ROUND_ATTEMPTS}"),
        );
        tls(&mut c, self.tls.as_ref());
        if self.fogs.is_empty() {
            c.problem("fogs", "[]", "needs at least one fog worker");
        }
        let mut seen = std::collections::BTreeMap::new();
        for (k, f) in self.fogs.iter().enumerate() {
            if let Some(first) = seen.insert(f.id, k) {
                c.problem(
                    format!("fogs[{k}].id"),
                    f.id,
                    format!("the same id as fogs[{first}].id"),
                );
            }
            dial(&mut c, &format!("fogs[{k}].address"), &f.address);
        }
        c.finish()
    }
}

impl FogFile {
    /// Checks every field (see the module docs).
    pub fn validate(&self) -> Result<(), Problems> {
        let mut c = Checker::default();
        listen(&mut c, "listen", &self.listen);
        dial(&mut c, "aggregator", &self.aggregator);
        path(&mut c, "public_key", &self.public_key);
        path(&mut c, "identity", &self.identity);
        path(&mut c, "registry", &self.registry);
        tls(&mut c, self.tls.as_ref());
        c.finish()
    }
}

impl ClientFile {
    /// Checks every field (see the module docs).
    pub fn validate(&self) -> Result<(), Problems> {
        let mut c = Checker::default();
        dial(&mut c, "aggregator", &self.aggregator);
        path(&mut c, "scenario", &self.scenario);
        path(&mut c, "public_key", &self.public_key);
        path(&mut c, "identity", &self.identity);
        path(&mut c, "registry", &self.registry);
        c.seconds("upload_timeout_s", self.upload_timeout_s, false);
        tls(&mut c, self.tls.as_ref());
        c.finish()
    }
}

impl HolderFile {
    /// Checks every field (see the module docs).
    pub fn validate(&self) -> Result<(), Problems> {
        let mut c = Checker::default();
        c.require(
            (1..=MAX_HOLDERS).contains(&self.index),
            "index",
            self.index,
            &format!("must be a share index in 1..={MAX_HOLDERS}"),
        );
        dial(&mut c, "aggregator", &self.aggregator);
        path(&mut c, "public_key", &self.public_key);
        path(&mut c, "share", &self.share);
        path(&mut c, "identity", &self.identity);
        path(&mut c, "registry", &self.registry);
        c.require(
            self.min_contributors >= 2,
            "min_contributors",
            self.min_contributors,
            "a key holder must refuse sums of a single update (at least 2)",
        );
        if let Some(state) = &self.state {
            path(&mut c, "state", state);
        }
        tls(&mut c, self.tls.as_ref());
        c.finish()
    }
}

impl InitOptions {
    /// Checks the options of `deploy init` that are not the scenario's: the host, the ports
    /// (the aggregator's and one per fog, all of them ports) and the waits.
    pub fn validate(&self) -> Result<(), Problems> {
        let mut c = Checker::default();
        c.require(
            self.host.parse::<IpAddr>().is_ok(),
            "host",
            quoted(&self.host),
            "not an IP address (every process listens on it)",
        );
        let last = u64::from(self.base_port) + self.scenario.fogs as u64;
        if self.base_port == 0 {
            c.problem("port", 0, "give the aggregator's port (1..=65535)");
        } else if last > u64::from(u16::MAX) {
            c.problem(
                "port",
                self.base_port,
                format!(
                    "the aggregator and {} fog workers need ports {}..={last}, past 65535: \
                     use a port of at most {}",
                    self.scenario.fogs,
                    self.base_port,
                    u64::from(u16::MAX).saturating_sub(self.scenario.fogs as u64)
                ),
            );
        }
        c.seconds("collect_timeout_s", self.collect_timeout_s, false);
        c.seconds("share_timeout_s", self.share_timeout_s, false);
        c.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn init(port: u16, fogs: usize) -> InitOptions {
        InitOptions {
            scenario: Scenario {
                fogs,
                ..Scenario::default()
            },
            out: "out".into(),
            host: "127.0.0.1".into(),
            base_port: port,
            key: None,
            collect_timeout_s: 60.0,
            share_timeout_s: 30.0,
        }
    }

    #[test]
    fn ports_that_do_not_fit_are_refused() {
        assert!(init(65533, 2).validate().is_ok());
        let e = init(65535, 2).validate().unwrap_err().to_string();
        assert!(
            e.contains("port = 65535") && e.contains("65535..=65537"),
            "{e}"
        );
        assert!(init(0, 2).validate().is_err());
        let mut o = init(50051, 2);
        o.host = "localhost".into();
        o.collect_timeout_s = -1.0;
        o.share_timeout_s = f64::NAN;
        let e = o.validate().unwrap_err();
        assert_eq!(e.problems().len(), 3, "{e}");
    }

    #[test]
    fn addresses() {
        let mut c = Checker::default();
        dial(&mut c, "a", "127.0.0.1:50051");
        dial(&mut c, "a", "host.example:1");
        dial(&mut c, "a", "[::1]:50051");
        listen(&mut c, "l", "[::1]:50051");
        assert!(c.finish().is_ok());
        for bad in ["", ":1", "h:0", "h:65536", "h", "h:x", "a b:1"] {
            let mut c = Checker::default();
            dial(&mut c, "a", bad);
            assert!(c.finish().is_err(), "{bad}");
        }
        for bad in ["", "127.0.0.1:0", "localhost:1", "127.0.0.1"] {
            let mut c = Checker::default();
            listen(&mut c, "l", bad);
            assert!(c.finish().is_err(), "{bad}");
        }
    }
}
