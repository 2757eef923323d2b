//! Partial decryption, verification of decryption shares, and combining (DESIGN §3).

use std::collections::BTreeSet;

use num_bigint::{BigInt, BigUint};
use num_traits::{One, Signed, Zero};
use rayon::prelude::*;

use super::keys::{KeyId, KeyShare, PublicKey, ShareIndex};
use super::{Ciphertext, Plaintext};
use crate::mont::SecretExponent;
use crate::proofs::DecryptionProof;
use crate::proofs::decryption_share::{inputs_digest, prove, verify};
use crate::{Entropy, Error};

/// One holder's partial decryptions `c_{i,j} = c_j^{2Δ·s_i} mod n²` of a vector of ciphertexts,
/// with one batched proof that they are correct.
///
/// The `context` given at decryption (a round id, say) is bound into the proof: a share made
/// for one context does not verify in another, so old shares cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptionShare {
    /// The holder `i`.
    pub holder: ShareIndex,
    /// Fingerprint of the public key the share was made under.
    pub key_id: KeyId,
    /// `c_{i,j}` for every ciphertext `c_j`, in order.
    pub partials: Vec<BigUint>,
    /// The proof of correct partial decryption.
    pub proof: DecryptionProof,
}

/// A decryption share whose proof has been checked against the holder's `v_i`, the ciphertexts
/// and the context. Only verified shares can be combined.
#[derive(Debug, Clone)]
pub struct VerifiedShare {
    holder: ShareIndex,
    key_id: KeyId,
    partials: Vec<BigUint>,
    /// Hash of the ciphertexts and the context the share was verified against.
    binding: [u8; 32],
}

impl VerifiedShare {
    /// The holder `i`.
    pub fn holder(&self) -> ShareIndex {
        self.holder
    }
}

/// `SHA-256` of the ciphertexts and context alone (with the key), shared by every holder's
/// share of the same decryption.
fn binding(pk: &PublicKey, context: &[u8], ciphertexts: &[Ciphertext]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    crate::arith::absorb(&mut h, b"spddl/v1/decryption/binding");
    crate::arith::absorb(&mut h, &pk.key_id().0);
    crate::arith::absorb(&mut h, context);
    crate::arith::absorb(&mut h, &(ciphertexts.len() as u64).to_be_bytes());
    for c in ciphertexts {
        crate::arith::absorb(&mut h, &c.value().to_bytes_be());
    }
    h.finalize().into()
}

impl KeyShare {
    /// The partial decryption `c^{2Δ·s_i} mod n²` of one ciphertext, without a proof.
    /// Aggregators accept only proven shares: use [`KeyShare::decrypt`].
    pub fn partial_decrypt(&self, pk: &PublicKey, c: &Ciphertext) -> Result<BigUint, Error> {
        self.check_key(pk)?;
        let exponent = crate::arith::SecretInt::new(self.witness(pk).get() << 1u32);
        let exponent = SecretExponent::new(exponent.get());
        let mont = pk.mont();
        Ok(mont.from_mont(&mont.pow_secret(&mont.to_mont(c.value()), &exponent)))
    }

    /// Partial decryptions of every ciphertext with one batched proof, bound to `context`.
    /// The proof's nonce `r` comes from `entropy`: a known `r` gives away `Δ·s_i = (z − r)/e`.
    pub fn decrypt(
        &self,
        pk: &PublicKey,
        ciphertexts: &[Ciphertext],
        context: &[u8],
        entropy: &mut Entropy,
    ) -> Result<DecryptionShare, Error> {
        self.check_key(pk)?;
        if ciphertexts.is_empty() {
            return Err(Error::Mismatch("nothing to decrypt: no ciphertexts".into()));
        }
        let witness = self.witness(pk);
        let exponent = crate::arith::SecretInt::new(witness.get() << 1u32);
        let exponent = SecretExponent::new(exponent.get());
        let mont = pk.mont();
        // c_{i,j} = c_j^{2Δ·s_i}, one fixed-window exponentiation per ciphertext, in parallel.
        let partials: Vec<BigUint> = ciphertexts
            .par_iter()
            .map(|c| mont.from_mont(&mont.pow_secret(&mont.to_mont(c.value()), &exponent)))
            .collect();
        let digest = inputs_digest(pk, self.index(), context, ciphertexts, &partials);
        let proof = prove(
            pk,
            self.index(),
            &witness,
            ciphertexts,
            &partials,
            &digest,
            entropy,
        );
        Ok(DecryptionShare {
            holder: self.index(),
            key_id: pk.key_id(),
            partials,
            proof,
        })
    }
}

impl DecryptionShare {
    /// Checks the share against the holder's verification key, the ciphertexts and the
    /// context. Any failure names the holder.
    pub fn verify(
        &self,
        pk: &PublicKey,
        ciphertexts: &[Ciphertext],
        context: &[u8],
    ) -> Result<VerifiedShare, Error> {
        let fail = |reason| {
            Err(Error::InvalidDecryptionShare {
                holder: self.holder,
                reason,
            })
        };
        if self.key_id != pk.key_id() {
            return fail("made under another public key");
        }
        if self.holder.get() > pk.holders() {
            return fail("holder index is outside 1..=ℓ");
        }
        if self.partials.len() != ciphertexts.len() {
            return fail("number of partial decryptions differs from number of ciphertexts");
        }
        if !self.partials.iter().all(|ci| pk.is_unit(ci)) {
            return fail("a partial decryption is not a unit of Z*_{n²}");
        }
        let digest = inputs_digest(pk, self.holder, context, ciphertexts, &self.partials);
        if let Err(reason) = verify(
            pk,
            self.holder,
            ciphertexts,
            &self.partials,
            &digest,
            &self.proof,
        ) {
            return fail(reason);
        }
        Ok(VerifiedShare {
            holder: self.holder,
            key_id: self.key_id,
            partials: self.partials.clone(),
            binding: binding(pk, context, ciphertexts),
        })
    }
}

/// `μ_i = Δ · Π_{j∈S, j≠i} j / (j − i)`: Lagrange coefficients at 0 scaled by `Δ`, integers.
fn lagrange_at_zero(delta: &BigUint, set: &[ShareIndex]) -> Vec<BigInt> {
    set.iter()
        .map(|&i| {
            let i = i64::from(i.get());
            let mut num = BigInt::from(delta.clone());
            let mut den = BigInt::one();
            for &j in set {
                let j = i64::from(j.get());
                if j != i {
                    num *= j;
                    den *= j - i;
                }
            }
            // Exact: Δ = ℓ! is divisible by Π (j − i) for distinct indices in 1..=ℓ.
            num / den
        })
        .collect()
}

/// Combines any `t` verified shares into plaintexts: `c′ = Π c_i^{2μ_i}`,
/// `M = L(c′)·(4Δ²)⁻¹ mod n`.
///
/// Refuses fewer than `t` distinct holders, two shares of one holder, and shares verified
/// against different ciphertexts, contexts or keys. With more than `t`, the `t` lowest holder
/// indices are used.
pub fn combine(pk: &PublicKey, shares: &[VerifiedShare]) -> Result<Vec<Plaintext>, Error> {
    let t = usize::from(pk.threshold());
    let mut seen = BTreeSet::new();
    for s in shares {
        if !seen.insert(s.holder) {
            return Err(Error::DuplicateShare { holder: s.holder });
        }
    }
    if shares.len() < t {
        return Err(Error::NotEnoughShares {
            valid: seen.into_iter().collect(),
            threshold: pk.threshold(),
            culprits: Vec::new(),
        });
    }
    let first = &shares[0];
    if let Some(other) = shares
        .iter()
        .find(|s| s.binding != first.binding || s.key_id != pk.key_id())
    {
        return Err(Error::Mismatch(format!(
            "share of holder {} was verified against other ciphertexts, context or key than \
             the share of holder {}",
            other.holder, first.holder
        )));
    }
    let mut chosen: Vec<&VerifiedShare> = shares.iter().collect();
    chosen.sort_by_key(|s| s.holder);
    chosen.truncate(t);
    let set: Vec<ShareIndex> = chosen.iter().map(|s| s.holder).collect();
    let mu = lagrange_at_zero(pk.delta(), &set);
    let n = pk.n();
    let exponents: Vec<(bool, BigUint)> = mu
        .iter()
        .map(|m| (m.is_negative(), m.magnitude() << 1u32))
        .collect();
    let mont = pk.mont();
    // Positive and negative exponents separately: c′ = P_j · N_j⁻¹ with
    // P_j = Π_{μ_i > 0} c_{i,j}^{2μ_i} and N_j = Π_{μ_i < 0} c_{i,j}^{2|μ_i|}.
    let (pos, neg): (Vec<BigUint>, Vec<BigUint>) = (0..first.partials.len())
        .into_par_iter()
        .map(|j| {
            let mut pos = BigUint::one();
            let mut neg = BigUint::one();
            for (share, (negative, e)) in chosen.iter().zip(&exponents) {
                let term = mont.pow_mod(&share.partials[j], e);
                if *negative {
                    neg = mont.mul_mod(&neg, &term);
                } else {
                    pos = mont.mul_mod(&pos, &term);
                }
            }
            (pos, neg)
        })
        .unzip();
    let neg_inv = batch_inverse(mont, &neg)
        .ok_or_else(|| Error::Mismatch("partial decryptions are not invertible mod n²".into()))?;
    pos.par_iter()
        .zip(neg_inv.par_iter())
        .map(|(p, ni)| {
            let c_prime = mont.mul_mod(p, ni);
            // L(c′) = (c′ − 1)/n; c′ ≡ 1 (mod n) for correct shares.
            let c_minus_1 = c_prime - 1u32;
            if !(&c_minus_1 % n).is_zero() {
                return Err(Error::Mismatch(
                    "combined value is not 1 mod n: shares inconsistent with the key".into(),
                ));
            }
            let l = c_minus_1 / n;
            Ok(Plaintext::from_trusted((l * pk.combine_factor()) % n))
        })
        .collect()
}

/// Inverses of every `x_j` mod `N` with one modular inversion (Montgomery's trick): prefix
/// products `q_j = x_1⋯x_j`, then `x_j⁻¹ = q_{j−1}·q_j⁻¹` walking back. `None` if some `x_j` is
/// not invertible.
fn batch_inverse(mont: &crate::mont::Montgomery, xs: &[BigUint]) -> Option<Vec<BigUint>> {
    let mut prefix = Vec::with_capacity(xs.len());
    let mut acc = BigUint::one();
    for x in xs {
        acc = mont.mul_mod(&acc, x);
        prefix.push(acc.clone());
    }
    let mut inv = acc.modinv(mont.modulus())?; // (x_1⋯x_k)⁻¹
    let mut out = vec![BigUint::one(); xs.len()];
    for j in (0..xs.len()).rev() {
        let before = if j == 0 {
            BigUint::one()
        } else {
            prefix[j - 1].clone()
        };
        out[j] = mont.mul_mod(&inv, &before);
        inv = mont.mul_mod(&inv, &xs[j]);
    }
    Some(out)
}

/// The result of [`verify_and_combine`].
#[derive(Debug, Clone)]
pub struct Combined {
    /// The decrypted plaintexts, one per ciphertext.
    pub plaintexts: Vec<Plaintext>,
    /// The holders whose shares were combined.
    pub used: Vec<ShareIndex>,
    /// Shares that failed verification, each error naming its holder.
    pub rejected: Vec<Error>,
}

/// Verifies every share, drops and blames the bad ones, and combines `t` valid shares.
///
/// Fails with [`Error::NotEnoughShares`] (listing the rejected holders) when fewer than `t`
/// distinct holders sent valid shares.
pub fn verify_and_combine(
    pk: &PublicKey,
    ciphertexts: &[Ciphertext],
    context: &[u8],
    shares: &[DecryptionShare],
) -> Result<Combined, Error> {
    let mut valid: Vec<VerifiedShare> = Vec::new();
    let mut rejected = Vec::new();
    for share in shares {
        if valid.iter().any(|v| v.holder == share.holder) {
            rejected.push(Error::DuplicateShare {
                holder: share.holder,
            });
            continue;
        }
        match share.verify(pk, ciphertexts, context) {
            Ok(v) => valid.push(v),
            Err(e) => rejected.push(e),
        }
    }
    if valid.len() < usize::from(pk.threshold()) {
        // A duplicate of a valid share is refused but blames no one.
        let culprits = rejected
            .iter()
            .filter_map(|e| match e {
                Error::InvalidDecryptionShare { holder, .. } => Some(*holder),
                _ => None,
            })
            .collect();
        let mut holders: Vec<ShareIndex> = valid.iter().map(|v| v.holder).collect();
        holders.sort();
        return Err(Error::NotEnoughShares {
            valid: holders,
            threshold: pk.threshold(),
            culprits,
        });
    }
    let plaintexts = combine(pk, &valid)?;
    let mut used: Vec<ShareIndex> = valid.iter().map(|v| v.holder).collect();
    used.sort();
    used.truncate(usize::from(pk.threshold()));
    Ok(Combined {
        plaintexts,
        used,
        rejected,
    })
}
