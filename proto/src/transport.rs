//! Channels, TLS and retries shared by every role's gRPC layer.
//!
//! Mutual TLS is the default: each process presents a certificate signed by the deployment's
//! CA and accepts only peers whose certificate that CA signed. `Security::Insecure` (plaintext
//! gRPC) exists for debugging behind an explicit `--insecure` flag.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig,
};

/// A process's TLS material: the CA that signs every participant, and its own certificate
/// and private key (PEM).
#[derive(Clone)]
pub struct TlsFiles {
    /// The CA certificate (`ca.pem`).
    pub ca: Vec<u8>,
    /// This process's certificate chain.
    pub cert: Vec<u8>,
    /// This process's private key.
    pub key: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsFiles { key: <redacted>, .. }")
    }
}

impl TlsFiles {
    /// Reads the three PEM files.
    pub fn read(ca: &Path, cert: &Path, key: &Path) -> Result<Self, String> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        Ok(TlsFiles {
            ca: read(ca)?,
            cert: read(cert)?,
            key: zeroize::Zeroizing::new(read(key)?),
        })
    }
}

/// How a process talks to others.
#[derive(Debug, Clone)]
pub enum Security {
    /// Mutual TLS under the deployment's CA.
    MutualTls(TlsFiles),
    /// Plaintext gRPC (only with `--insecure`).
    Insecure,
}

/// Paths of a process's TLS files, as they appear in its config.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct TlsPaths {
    /// The CA certificate.
    pub ca: PathBuf,
    /// This process's certificate.
    pub cert: PathBuf,
    /// This process's private key.
    pub key: PathBuf,
}

impl Security {
    /// A server builder with mutual TLS (or none), timeouts and keep-alives set.
    pub fn server(&self) -> Result<Server, String> {
        let builder = Server::builder()
            .timeout(Duration::from_secs(120))
            .tcp_keepalive(Some(Duration::from_secs(30)));
        match self {
            Security::Insecure => Ok(builder),
            Security::MutualTls(t) => builder
                .tls_config(
                    ServerTlsConfig::new()
                        .identity(Identity::from_pem(&t.cert, &*t.key))
                        .client_ca_root(Certificate::from_pem(&t.ca)),
                )
                .map_err(|e| format!("TLS server configuration: {e}")),
        }
    }

    /// A lazily connecting channel to `address` (`host:port`): connects on first use and
    /// reconnects after failures; each call has `timeout`.
    pub fn channel(&self, address: &str, timeout: Duration) -> Result<Channel, String> {
        let scheme = match self {
            Security::Insecure => "http",
            Security::MutualTls(_) => "https",
        };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
            .map_err(|e| format!("{address}: not a valid address: {e}"))?
            .connect_timeout(Duration::from_secs(3))
            .timeout(timeout)
            .tcp_nodelay(true);
        if let Security::MutualTls(t) = self {
            let host = address
                .rsplit_once(':')
                .map_or(address, |(h, _)| h)
                .trim_matches(['[', ']']);
            endpoint = endpoint
                .tls_config(
                    ClientTlsConfig::new()
                        .ca_certificate(Certificate::from_pem(&t.ca))
                        .identity(Identity::from_pem(&t.cert, &*t.key))
                        .domain_name(host),
                )
                .map_err(|e| format!("TLS client configuration: {e}"))?;
        }
        Ok(endpoint.connect_lazy())
    }
}

/// Exponential backoff: 100 ms doubling to at most 5 s, for retrying a failed call.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_millis(100),
        }
    }
}

impl Backoff {
    /// The wait before the next attempt, doubling each time.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(5));
        d
    }

    /// Back to the shortest wait after a success.
    pub fn reset(&mut self) {
        *self = Backoff::default();
    }
}

/// A one-line description of a failed call, with the TLS or connection cause when there is
/// one (tonic nests it several errors deep).
pub fn describe(status: &tonic::Status) -> String {
    use std::error::Error as _;
    let mut msg = format!("{}: {}", code_name(status.code()), status.message());
    let mut source = status.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::InvalidArgument => "refused",
        Code::PermissionDenied => "permission denied",
        Code::Unauthenticated => "unauthenticated",
        Code::Unavailable => "unavailable",
        Code::DeadlineExceeded => "timed out",
        Code::FailedPrecondition => "not now",
        Code::ResourceExhausted => "too large",
        _ => "error",
    }
}

/// Aborts background tasks when dropped, so a role's helper loops end with its server, even
/// when the server's future is dropped (killed) rather than shut down.
#[derive(Debug, Default)]
pub struct TaskGuard(Vec<tokio::task::AbortHandle>);

impl TaskGuard {
    /// Adds a task to abort.
    pub fn push<T>(&mut self, handle: &tokio::task::JoinHandle<T>) {
        self.0.push(handle.abort_handle());
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}
