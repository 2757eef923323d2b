//! Who is who: the public identities every party trusts.

use std::collections::BTreeMap;

use spddl_crypto::identity::VerifyingKey;
use spddl_crypto::paillier::ShareIndex;

use crate::{ClientId, FogId};

/// A message's sender, as named in its transcript and in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Sender {
    /// The aggregator.
    Aggregator,
    /// A client.
    Client(ClientId),
    /// A fog worker.
    Fog(FogId),
    /// A key-share holder, by share index.
    Holder(ShareIndex),
}

impl Sender {
    /// The sender as `(kind, number)` for transcripts.
    pub fn code(self) -> (u64, u64) {
        match self {
            Sender::Aggregator => (0, 0),
            Sender::Client(c) => (1, c.0.into()),
            Sender::Fog(f) => (2, f.0.into()),
            Sender::Holder(h) => (3, h.get().into()),
        }
    }
}

impl std::fmt::Display for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sender::Aggregator => f.write_str("aggregator"),
            Sender::Client(c) => c.fmt(f),
            Sender::Fog(g) => g.fmt(f),
            Sender::Holder(h) => write!(f, "key holder {h}"),
        }
    }
}

/// The registry of public identities: unknown senders are refused.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// The aggregator's key.
    pub aggregator: Option<VerifyingKey>,
    /// Registered clients.
    pub clients: BTreeMap<ClientId, VerifyingKey>,
    /// Registered fog workers.
    pub fogs: BTreeMap<FogId, VerifyingKey>,
    /// Key-share holders by share index.
    pub holders: BTreeMap<ShareIndex, VerifyingKey>,
    /// Whose TLS certificate is whose: SHA-256 of each participant's DER certificate, bound
    /// to its protocol identity at `deploy init`. A connection speaks only for the sender its
    /// certificate maps to (DESIGN §6: a participant's certificate speaks only for its own id).
    pub certificates: BTreeMap<[u8; 32], Sender>,
}

impl Registry {
    /// SHA-256 of a DER certificate: the key of [`Registry::certificates`].
    pub fn certificate_fingerprint(der: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(der).into()
    }

    /// The participant a DER certificate was issued to, if it is registered.
    pub fn sender_of_certificate(&self, der: &[u8]) -> Option<Sender> {
        self.certificates
            .get(&Self::certificate_fingerprint(der))
            .copied()
    }

    /// The verifying key of a sender, if registered.
    pub fn key_of(&self, sender: Sender) -> Option<&VerifyingKey> {
        match sender {
            Sender::Aggregator => self.aggregator.as_ref(),
            Sender::Client(c) => self.clients.get(&c),
            Sender::Fog(f) => self.fogs.get(&f),
            Sender::Holder(h) => self.holders.get(&h),
        }
    }
}
