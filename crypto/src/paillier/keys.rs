//! Public key, key shares and share indices.

use std::fmt;
use std::sync::{Arc, OnceLock};

use num_bigint::BigUint;
use num_integer::Integer;
use num_traits::One;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::fixed_base::FixedBaseTable;
use super::{MAX_HOLDERS, MAX_MODULUS_BITS, MIN_MODULUS_BITS};
use crate::Error;
use crate::arith::{SecretInt, absorb, factorial};
use crate::mont::Montgomery;

/// The index `i ∈ 1..=ℓ` of a key-share holder (the point where the dealer's polynomial is
/// evaluated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShareIndex(u16);

impl ShareIndex {
    /// The index `i`, checked against `1..=holders`.
    pub fn new(i: u64, holders: u16) -> Result<Self, Error> {
        match u16::try_from(i) {
            Ok(i) if i >= 1 && i <= holders => Ok(ShareIndex(i)),
            _ => Err(Error::ShareIndexOutOfRange { index: i, holders }),
        }
    }

    /// The index as an integer.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for ShareIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// SHA-256 fingerprint of a public key's canonical encoding; names the key in files and
/// transcripts so that material under another key is refused.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 32]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", &hex::encode(self.0)[..16])
    }
}

/// The threshold public key: `n`, the fast-encryption base `h_s = h^n`, the verification base
/// `v`, the holders' verification keys `v_i = v^{Δ·s_i}`, the threshold `t` and holder count `ℓ`.
///
/// Constructing one checks that its parts fit together; code that holds a `PublicKey` can rely
/// on `n` being odd and of a supported size, `1 ≤ t ≤ ℓ`, and `h_s`, `v`, `v_i` being units
/// of `Z*_{n²}`.
pub struct PublicKey {
    n: BigUint,
    n_squared: BigUint,
    h_s: BigUint,
    v: BigUint,
    verification_keys: Vec<BigUint>,
    threshold: u16,
    holders: u16,
    /// `Δ = ℓ!`
    delta: BigUint,
    /// `(4Δ²)⁻¹ mod n`, the last factor of combining.
    combine_factor: BigUint,
    key_id: KeyId,
    /// Montgomery arithmetic mod `n²`.
    mont: Arc<Montgomery>,
    /// The `h_s` table, built on first use and shared by every clone of this key.
    fixed_base: Arc<OnceLock<FixedBaseTable>>,
}

impl Clone for PublicKey {
    fn clone(&self) -> Self {
        PublicKey {
            n: self.n.clone(),
            n_squared: self.n_squared.clone(),
            h_s: self.h_s.clone(),
            v: self.v.clone(),
            verification_keys: self.verification_keys.clone(),
            threshold: self.threshold,
            holders: self.holders,
            delta: self.delta.clone(),
            combine_factor: self.combine_factor.clone(),
            key_id: self.key_id,
            mont: Arc::clone(&self.mont),
            fixed_base: Arc::clone(&self.fixed_base),
        }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_id", &self.key_id)
            .field("bits", &self.n.bits())
            .field("threshold", &self.threshold)
            .field("holders", &self.holders)
            .finish_non_exhaustive()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.key_id == other.key_id
    }
}
impl Eq for PublicKey {}

fn is_unit(x: &BigUint, n: &BigUint, n_squared: &BigUint) -> bool {
    x >= &BigUint::one() && x < n_squared && x.gcd(n).is_one()
}

impl PublicKey {
    /// Assembles and checks a public key.
    pub fn new(
        n: BigUint,
        h_s: BigUint,
        v: BigUint,
        verification_keys: Vec<BigUint>,
        threshold: u16,
    ) -> Result<Self, Error> {
        let bad = |reason: String| Err(Error::InvalidPublicKey(reason));
        let bits = n.bits();
        if !(MIN_MODULUS_BITS..=MAX_MODULUS_BITS).contains(&bits) {
            return bad(format!(
                "modulus has {bits} bits, expected {MIN_MODULUS_BITS}..={MAX_MODULUS_BITS}"
            ));
        }
        if n.is_even() {
            return bad("modulus n is even".into());
        }
        let holders = match u16::try_from(verification_keys.len()) {
            Ok(l) if (1..=MAX_HOLDERS).contains(&l) => l,
            _ => {
                return bad(format!(
                    "{} verification keys, expected 1..={MAX_HOLDERS}",
                    verification_keys.len()
                ));
            }
        };
        if threshold < 1 || threshold > holders {
            return bad(format!("threshold {threshold} is outside 1..={holders}"));
        }
        let n_squared = &n * &n;
        if !is_unit(&h_s, &n, &n_squared) {
            return bad("h_s is not a unit of Z*_{n²}".into());
        }
        if !is_unit(&v, &n, &n_squared) {
            return bad("v is not a unit of Z*_{n²}".into());
        }
        if let Some(i) = verification_keys
            .iter()
            .position(|vi| !is_unit(vi, &n, &n_squared))
        {
            return bad(format!(
                "verification key v_{} is not a unit of Z*_{{n²}}",
                i + 1
            ));
        }
        let delta = factorial(u64::from(holders));
        let four_delta_sq = (&delta * &delta) << 2u32;
        let Some(combine_factor) = four_delta_sq.modinv(&n) else {
            return bad("n shares a factor with 4·(ℓ!)²".into());
        };
        let Some(mont) = Montgomery::new(&n_squared) else {
            return bad("modulus n is even".into());
        };
        let key_id = key_id(&n, &h_s, &v, &verification_keys, threshold);
        Ok(PublicKey {
            n,
            n_squared,
            h_s,
            v,
            verification_keys,
            threshold,
            holders,
            delta,
            combine_factor,
            key_id,
            mont: Arc::new(mont),
            fixed_base: Arc::new(OnceLock::new()),
        })
    }

    /// The modulus `n`.
    pub fn n(&self) -> &BigUint {
        &self.n
    }
    /// `n²`, the ciphertext modulus.
    pub fn n_squared(&self) -> &BigUint {
        &self.n_squared
    }
    /// Bit length of `n`.
    pub fn bits(&self) -> u64 {
        self.n.bits()
    }
    /// The fixed encryption base `h_s = h^n mod n²`.
    pub fn h_s(&self) -> &BigUint {
        &self.h_s
    }
    /// The verification base `v`.
    pub fn v(&self) -> &BigUint {
        &self.v
    }
    /// All verification keys `v_1..v_ℓ`.
    pub fn verification_keys(&self) -> &[BigUint] {
        &self.verification_keys
    }
    /// The verification key `v_i` of one holder.
    pub fn verification_key(&self, i: ShareIndex) -> &BigUint {
        &self.verification_keys[usize::from(i.0) - 1]
    }
    /// The threshold `t`: any `t` shares decrypt.
    pub fn threshold(&self) -> u16 {
        self.threshold
    }
    /// The number of holders `ℓ`.
    pub fn holders(&self) -> u16 {
        self.holders
    }
    /// `Δ = ℓ!`.
    pub fn delta(&self) -> &BigUint {
        &self.delta
    }
    /// `(4Δ²)⁻¹ mod n`.
    pub(crate) fn combine_factor(&self) -> &BigUint {
        &self.combine_factor
    }
    /// The key's fingerprint.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }
    /// A share index of this key, checked against `1..=ℓ`.
    pub fn share_index(&self, i: u64) -> Result<ShareIndex, Error> {
        ShareIndex::new(i, self.holders)
    }
    /// Bit length of the encryption randomness `α` (`|n|/2`, Damgård–Jurik–Nielsen).
    pub fn alpha_bits(&self) -> u64 {
        self.n.bits().div_ceil(2)
    }
    /// Whether `x` is a unit of `Z*_{n²}` (in `[1, n²)` and coprime with `n`).
    pub fn is_unit(&self, x: &BigUint) -> bool {
        is_unit(x, &self.n, &self.n_squared)
    }
    /// The precomputed fixed-base table for `h_s`, built on first use.
    pub(crate) fn fixed_base(&self) -> &FixedBaseTable {
        self.fixed_base
            .get_or_init(|| FixedBaseTable::new(&self.h_s, self.alpha_bits(), &self.mont))
    }
    /// Montgomery arithmetic modulo `n²`.
    pub(crate) fn mont(&self) -> &Montgomery {
        &self.mont
    }
    /// Builds the fixed-base encryption table now instead of on the first encryption, and
    /// returns its size in bytes (clones of this key share it).
    pub fn precompute_encryption_table(&self) -> usize {
        self.fixed_base().memory_bytes()
    }
}

/// `SHA-256("spddl/v1/public-key" ‖ t ‖ ℓ ‖ n ‖ h_s ‖ v ‖ v_1 ‖ … ‖ v_ℓ)`, every part
/// length-prefixed (8-byte big-endian length, then big-endian bytes).
fn key_id(n: &BigUint, h_s: &BigUint, v: &BigUint, vks: &[BigUint], t: u16) -> KeyId {
    let mut h = Sha256::new();
    absorb(&mut h, b"spddl/v1/public-key");
    absorb(&mut h, &t.to_be_bytes());
    absorb(&mut h, &(vks.len() as u64).to_be_bytes());
    for x in [n, h_s, v].into_iter().chain(vks) {
        absorb(&mut h, &x.to_bytes_be());
    }
    KeyId(h.finalize().into())
}

/// One holder's share `s_i = f(i) mod nm` of the decryption exponent `d`.
///
/// Zeroized on drop; `Debug` prints only the index and key. Obtain one from [`super::Dealer`]
/// or from a key-share file; [`KeyShare::new`] checks it against the public key.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct KeyShare {
    #[zeroize(skip)]
    index: ShareIndex,
    #[zeroize(skip)]
    key_id: KeyId,
    secret: SecretInt,
}

impl fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyShare")
            .field("index", &self.index.0)
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl KeyShare {
    /// A key share for holder `index`, checked against the public key: the index must be in
    /// `1..=ℓ` and `v^{Δ·s_i} = v_i`, so a share of another key or holder is refused.
    pub fn new(pk: &PublicKey, index: u64, secret: SecretInt) -> Result<Self, Error> {
        let index = pk.share_index(index)?;
        if secret.get().bits() > 2 * pk.bits() {
            return Err(Error::InvalidKeyShare {
                index: index.0.into(),
                reason: "secret share is larger than n²".into(),
            });
        }
        let share = KeyShare {
            index,
            key_id: pk.key_id(),
            secret,
        };
        let witness = share.witness(pk);
        if pk.v().modpow(witness.get(), pk.n_squared()) != *pk.verification_key(index) {
            return Err(Error::InvalidKeyShare {
                index: index.0.into(),
                reason: "v^(Δ·s_i) does not match the public verification key v_i".into(),
            });
        }
        Ok(share)
    }

    /// Builds a share the dealer has just computed (already consistent by construction).
    pub(crate) fn from_dealer(pk: &PublicKey, index: ShareIndex, secret: SecretInt) -> Self {
        KeyShare {
            index,
            key_id: pk.key_id(),
            secret,
        }
    }

    /// The holder's index `i`.
    pub fn index(&self) -> ShareIndex {
        self.index
    }
    /// The fingerprint of the public key this share belongs to.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }
    /// The secret `s_i`. Handle with care: see [`crate::formats`] for writing it to a file.
    pub fn secret(&self) -> &SecretInt {
        &self.secret
    }

    /// `Δ·s_i`, the witness of the decryption proof and the exponent behind `v_i`.
    pub(crate) fn witness(&self, pk: &PublicKey) -> SecretInt {
        SecretInt::new(pk.delta() * self.secret.get())
    }

    pub(crate) fn check_key(&self, pk: &PublicKey) -> Result<(), Error> {
        if self.key_id != pk.key_id() {
            return Err(Error::InvalidKeyShare {
                index: self.index.0.into(),
                reason: format!(
                    "share belongs to key {}, not to key {}",
                    self.key_id,
                    pk.key_id()
                ),
            });
        }
        Ok(())
    }
}
