//! Channels, TLS and retries shared by every role's gRPC layer.
//!
//! Mutual TLS is the default: each process presents a certificate signed by the deployment's
//! CA and accepts only peers whose certificate that CA signed. `Security::Insecure` (plaintext
//! gRPC) exists for debugging behind an explicit `--insecure` flag.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::body::Body;
use tonic::codegen::http;
use tonic::transport::server::Router;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Server};
use tower::layer::util::{Identity as NoLayer, Stack};
use tower::util::MapResponseLayer;
use tracing::{debug, warn};

/// How long a peer has to complete its TLS handshake before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// Reads the three PEM files; warns when others may read the private key.
    pub fn read(ca: &Path, cert: &Path, key: &Path) -> Result<Self, String> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let (private, warning) = spddl_crypto::formats::read_secret_file(key)
            .map_err(|e| format!("{}: {e}", key.display()))?;
        if let Some(w) = warning {
            warn!("{w}");
        }
        Ok(TlsFiles {
            ca: read(ca)?,
            cert: read(cert)?,
            key: zeroize::Zeroizing::new(private.as_bytes().to_vec()),
        })
    }
}

impl TlsFiles {
    /// The server side of mutual TLS: this process's certificate, and only clients presenting
    /// a certificate the CA signed; HTTP/2 by ALPN, as gRPC needs.
    fn server_config(&self) -> Result<rustls::ServerConfig, String> {
        let certs = |pem: &[u8], what: &str| {
            CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{what}: not a PEM certificate: {e}"))
        };
        let mut roots = rustls::RootCertStore::empty();
        for ca in certs(&self.ca, "CA certificate")? {
            roots
                .add(ca)
                .map_err(|e| format!("CA certificate: unusable: {e}"))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .map_err(|e| format!("CA certificate: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(&self.key)
            .map_err(|e| format!("TLS private key: not a PEM key: {e}"))?;
        let mut config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(&self.cert, "certificate")?, key)
            .map_err(|e| format!("TLS server configuration: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

/// Accepts TCP connections and turns each into a ready connection with `accept` (`None`:
/// drop it), running them concurrently; the stream ends when the listener fails for good.
fn incoming<IO, F, Fut>(
    listener: tokio::net::TcpListener,
    accept: F,
) -> impl tokio_stream::Stream<Item = Result<IO, std::io::Error>>
where
    IO: Send + 'static,
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + 'static,
    Fut: Future<Output = Option<IO>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let ready = accept(tcp, peer);
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Some(io) = ready.await {
                    let _ = tx.send(Ok(io)).await;
                }
            });
        }
    });
    Incoming {
        ready: tokio_stream::wrappers::ReceiverStream::new(rx),
        acceptor: acceptor.abort_handle(),
    }
}

/// Connections ready for the server. Dropped with the server, it stops the accept loop, which
/// closes the listening socket (a restarted process can bind the port again).
struct Incoming<IO> {
    ready: tokio_stream::wrappers::ReceiverStream<Result<IO, std::io::Error>>,
    acceptor: tokio::task::AbortHandle,
}

impl<IO> tokio_stream::Stream for Incoming<IO> {
    type Item = Result<IO, std::io::Error>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.get_mut().ready).poll_next(cx)
    }
}

impl<IO> Drop for Incoming<IO> {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

/// One TLS handshake; a refusal is logged with the peer's address and rustls's reason.
async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(tls),
        // A port probe: connected and closed without a word.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            debug!(%peer, "connection closed before the TLS handshake");
            None
        }
        Ok(Err(e)) => {
            warn!(%peer, "TLS handshake refused: {e}");
            None
        }
        Err(_) => {
            warn!(%peer, "TLS handshake refused: not finished within {HANDSHAKE_TIMEOUT:?}");
            None
        }
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

/// The response layer every SPDDL server has: see [`size_refusal`].
pub type SizeRefusal = MapResponseLayer<fn(http::Response<Body>) -> http::Response<Body>>;

/// A server builder as [`Security::server`] makes it.
pub type GrpcServer = Server<Stack<SizeRefusal, NoLayer>>;

/// A router of a [`GrpcServer`], for [`Security::serve`].
pub type GrpcRouter = Router<Stack<SizeRefusal, NoLayer>>;

/// A request over the message-size limit is refused by tonic's decoder with `OUT_OF_RANGE`
/// before any handler runs; gRPC's status-code guide names `RESOURCE_EXHAUSTED` for a
/// message larger than the receiver accepts, which is what a peer should see (and may
/// tell apart from a bad argument). The refusal arrives as a trailers-only response, so its
/// status is in the headers.
pub fn size_refusal(mut response: http::Response<Body>) -> http::Response<Body> {
    const TOO_LARGE: &str = "Error, decoded message length too large";
    if let Some(status) = tonic::Status::from_header_map(response.headers())
        && status.code() == tonic::Code::OutOfRange
        && status.message().starts_with(TOO_LARGE)
    {
        let refusal = tonic::Status::resource_exhausted(status.message());
        if refusal.add_header(response.headers_mut()).is_err() {
            warn!("could not rewrite a size refusal's status");
        }
    }
    response
}

impl Security {
    /// A server builder with timeouts and keep-alives set, and [`size_refusal`] as its
    /// layer. TLS is not configured here: [`Security::serve`] accepts TLS itself so that it
    /// can log every refused handshake.
    pub fn server(&self) -> GrpcServer {
        let refusal: fn(http::Response<Body>) -> http::Response<Body> = size_refusal;
        Server::builder()
            .timeout(Duration::from_secs(120))
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .layer(MapResponseLayer::new(refusal))
    }

    /// Serves `router` on `listen` until `stop` completes.
    ///
    /// Under mutual TLS each connection's handshake runs in its own task (a slow peer never
    /// holds up others) and must finish within [`HANDSHAKE_TIMEOUT`]; a peer whose certificate
    /// the deployment's CA did not sign, or that presents none, is refused with a warning
    /// naming its address and the reason, and never reaches a service.
    pub async fn serve(
        &self,
        router: GrpcRouter,
        listen: SocketAddr,
        stop: impl Future<Output = ()>,
    ) -> Result<(), String> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let result = match self {
            Security::Insecure => {
                let incoming = incoming(listener, |tcp, _| async move { Some(tcp) });
                router.serve_with_incoming_shutdown(incoming, stop).await
            }
            Security::MutualTls(t) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(t.server_config()?));
                let incoming = incoming(listener, move |tcp, peer| {
                    let acceptor = acceptor.clone();
                    async move { handshake(&acceptor, tcp, peer).await }
                });
                router.serve_with_incoming_shutdown(incoming, stop).await
            }
        };
        result.map_err(|e| format!("server on {listen}: {e}"))
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

/// Binds a connection's identity to the protocol identity a request claims (DESIGN §6: a
/// participant's certificate speaks only for its own id). Every handler that reads an id from
/// a request — a fog, client or holder number, an upload's or share's sender — passes it to
/// [`Callers::require`] before anything else, so a member of the deployment cannot speak as
/// another one, whatever its certificate's CA.
#[derive(Debug, Clone)]
pub struct Callers {
    registry: Arc<crate::Registry>,
    tls: bool,
}

impl Callers {
    /// Checks callers against `registry`'s certificate fingerprints under mutual TLS; under
    /// [`Security::Insecure`] (debugging only) no certificate exists and every claim passes.
    pub fn new(security: &Security, registry: Arc<crate::Registry>) -> Self {
        Callers {
            registry,
            tls: matches!(security, Security::MutualTls(_)),
        }
    }

    /// The registered participant whose certificate made `request`: `Ok(None)` without TLS,
    /// `PermissionDenied` for a certificate the registry does not bind to anyone.
    pub fn caller<T>(
        &self,
        request: &tonic::Request<T>,
        rpc: &str,
    ) -> Result<Option<crate::Sender>, tonic::Status> {
        if !self.tls {
            return Ok(None);
        }
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown address".to_string(), |a| a.to_string());
        let certs = request.peer_certs();
        let Some(leaf) = certs.as_ref().and_then(|c| c.first()) else {
            warn!(%peer, "{rpc}: refused: no client certificate");
            return Err(tonic::Status::permission_denied(format!(
                "{rpc}: no client certificate"
            )));
        };
        match self.registry.sender_of_certificate(leaf.as_ref()) {
            Some(sender) => Ok(Some(sender)),
            None => {
                let fp = crate::Registry::certificate_fingerprint(leaf.as_ref());
                let short: String = fp[..8].iter().map(|b| format!("{b:02x}")).collect();
                warn!(%peer, "{rpc}: refused: certificate {short}… is not bound to any participant in the registry");
                Err(tonic::Status::permission_denied(format!(
                    "{rpc}: certificate {short}… is not bound to any participant in the registry"
                )))
            }
        }
    }

    /// Refuses `request` with `PermissionDenied` naming both ids, and logs it, unless its
    /// certificate is `claimed`'s.
    pub fn require<T>(
        &self,
        request: &tonic::Request<T>,
        claimed: crate::Sender,
        rpc: &str,
    ) -> Result<(), tonic::Status> {
        match self.caller(request, rpc)? {
            None => Ok(()),
            Some(actual) if actual == claimed => Ok(()),
            Some(actual) => {
                let peer = request
                    .remote_addr()
                    .map_or_else(|| "unknown address".to_string(), |a| a.to_string());
                let msg = format!("{rpc}: {actual}'s certificate cannot speak as {claimed}");
                warn!(%peer, "refused: {msg}");
                Err(tonic::Status::permission_denied(msg))
            }
        }
    }
}

/// At most one piece of heavy work per peer at a time: a handler that parses a large message
/// claims the sender first and is refused while that sender's previous message is still being
/// checked, so no one peer can occupy every blocking thread.
#[derive(Debug, Clone, Default)]
pub struct OnePerPeer(Arc<std::sync::Mutex<std::collections::BTreeSet<crate::Sender>>>);

/// A claim of [`OnePerPeer`], given back when dropped.
#[derive(Debug)]
pub struct PeerClaim {
    set: OnePerPeer,
    peer: crate::Sender,
}

impl OnePerPeer {
    /// Claims `peer` for the work of `rpc`; `UNAVAILABLE` (retry after the answer) while it
    /// holds a claim already.
    pub fn claim(&self, peer: crate::Sender, rpc: &str) -> Result<PeerClaim, tonic::Status> {
        let mut set = self
            .0
            .lock()
            .map_err(|_| tonic::Status::internal("peer claims poisoned"))?;
        if !set.insert(peer) {
            return Err(tonic::Status::unavailable(format!(
                "{rpc}: a message of {peer} is being checked already; retry after its answer"
            )));
        }
        Ok(PeerClaim {
            set: self.clone(),
            peer,
        })
    }
}

impl Drop for PeerClaim {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.0.lock() {
            set.remove(&self.peer);
        }
    }
}
