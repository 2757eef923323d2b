//! Proof of correct partial decryption: Chaum–Pedersen equality of discrete logarithms over the
//! integers, made non-interactive with Fiat–Shamir (DESIGN §3; Shoup 2000, Damgård–Jurik 2001).
//!
//! **Statement** (public data): `n`, `v`, the holder's `v_i`, ciphertexts `c_1..c_k` and the
//! claimed partial decryptions `c_{i,1}..c_{i,k}`. **Witness** (private data): `Δ·s_i` with
//! `v_i = v^{Δ·s_i}` and `c_{i,j} = c_j^{2Δ·s_i}` for every `j`.
//!
//! **Batching.** One holder uses the same witness for every ciphertext of a round, so one proof
//! covers all of them: weights `ρ_j` (κ bits) are hashed from all `(c_j, c_{i,j})` and the proof
//! is run on `U = Π c_j^{4ρ_j}`, `W = Π c_{i,j}^{2ρ_j}`. If some `c_{i,j}` is wrong, `W ≠ U^{Δs_i}`
//! except with probability about `2^{−κ}` over the weights. For `k = 1`, `U = c⁴` and
//! `W = c_i²` exactly as in the single-ciphertext proof.
//!
//! **Commitment** `a = U^r`, `b = v^r` with `r` of `|Δ| + 2|n| + 2κ` bits; **challenge**
//! `e = H(domain, key, holder, context, inputs, U, W, a, b)` truncated to κ bits; **response**
//! `z = r + e·Δ·s_i`. **Verification**: `U^z = a·W^e` and `v^z = b·v_i^e` (mod `n²`).

use num_bigint::BigUint;

use crate::mont::SecretExponent;
use sha2::{Digest, Sha256};

use crate::Entropy;
use crate::arith::{SecretInt, absorb, hash_to_bits, random_bits};
use crate::paillier::{Ciphertext, KAPPA, PublicKey, ShareIndex};

const CHALLENGE_DOMAIN: &[u8] = b"spddl/v1/decryption-share/challenge";
const WEIGHT_DOMAIN: &[u8] = b"spddl/v1/decryption-share/batch-weights";
const INPUTS_DOMAIN: &[u8] = b"spddl/v1/decryption-share/inputs";

/// A non-interactive proof that a holder's partial decryptions use the exponent behind `v_i`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptionProof {
    /// Commitment `a = U^r mod n²`.
    pub a: BigUint,
    /// Commitment `b = v^r mod n²`.
    pub b: BigUint,
    /// Response `z = r + e·Δ·s_i` (an integer, not reduced).
    pub z: BigUint,
}

/// Bits of the commitment randomness `r`: `|Δ| + 2|n| + 2κ`, so that `z` statistically hides
/// `e·Δ·s_i` (which has at most `|Δ| + 2|n| + κ` bits since `s_i < nm < n²`).
fn r_bits(pk: &PublicKey) -> u64 {
    pk.delta().bits() + 2 * pk.bits() + 2 * KAPPA
}

/// SHA-256 over every ciphertext and partial decryption, length-prefixed, with the key, the
/// holder and the caller's context. Binds the proof (and a verified share) to exactly these
/// inputs.
pub(crate) fn inputs_digest(
    pk: &PublicKey,
    holder: ShareIndex,
    context: &[u8],
    ciphertexts: &[Ciphertext],
    partials: &[BigUint],
) -> [u8; 32] {
    let mut h = Sha256::new();
    absorb(&mut h, INPUTS_DOMAIN);
    absorb(&mut h, &pk.key_id().0);
    absorb(&mut h, &holder.get().to_be_bytes());
    absorb(&mut h, context);
    absorb(&mut h, &(ciphertexts.len() as u64).to_be_bytes());
    for (c, ci) in ciphertexts.iter().zip(partials) {
        absorb(&mut h, &c.value().to_bytes_be());
        absorb(&mut h, &ci.to_bytes_be());
    }
    h.finalize().into()
}

/// The batched statement `(U, W)`.
fn statement(
    pk: &PublicKey,
    ciphertexts: &[Ciphertext],
    partials: &[BigUint],
    digest: &[u8; 32],
) -> (BigUint, BigUint) {
    let mont = pk.mont();
    let four = BigUint::from(4u32);
    let two = BigUint::from(2u32);
    if let ([c], [ci]) = (ciphertexts, partials) {
        return (mont.pow_mod(c.value(), &four), mont.pow_mod(ci, &two));
    }
    let rho: Vec<BigUint> = (0..ciphertexts.len())
        .map(|j| hash_to_bits(WEIGHT_DOMAIN, &[digest, &(j as u64).to_be_bytes()], KAPPA))
        .collect();
    let cs: Vec<&BigUint> = ciphertexts.iter().map(Ciphertext::value).collect();
    let cis: Vec<&BigUint> = partials.iter().collect();
    let (u, w) = rayon::join(|| mont.multi_pow(&cs, &rho), || mont.multi_pow(&cis, &rho));
    // U = (Π c_j^{ρ_j})⁴, W = (Π c_{i,j}^{ρ_j})²
    (mont.pow_mod(&u, &four), mont.pow_mod(&w, &two))
}

#[allow(clippy::too_many_arguments)]
fn challenge(
    pk: &PublicKey,
    holder: ShareIndex,
    digest: &[u8; 32],
    u: &BigUint,
    w: &BigUint,
    a: &BigUint,
    b: &BigUint,
) -> BigUint {
    let parts: [&[u8]; 9] = [
        &pk.n().to_bytes_be(),
        &pk.v().to_bytes_be(),
        &pk.verification_key(holder).to_bytes_be(),
        digest,
        &u.to_bytes_be(),
        &w.to_bytes_be(),
        &a.to_bytes_be(),
        &b.to_bytes_be(),
        &holder.get().to_be_bytes(),
    ];
    hash_to_bits(CHALLENGE_DOMAIN, &parts, KAPPA)
}

/// Proves that `partials[j] = ciphertexts[j]^{2·witness}` and `v_i = v^{witness}`.
/// `digest` is [`inputs_digest`] of the same data.
pub(crate) fn prove(
    pk: &PublicKey,
    holder: ShareIndex,
    witness: &SecretInt,
    ciphertexts: &[Ciphertext],
    partials: &[BigUint],
    digest: &[u8; 32],
    entropy: &mut Entropy,
) -> DecryptionProof {
    let mont = pk.mont();
    let (u, w) = statement(pk, ciphertexts, partials, digest);
    let r = SecretInt::new(random_bits(r_bits(pk), entropy));
    let r_exp = SecretExponent::new(r.get());
    let (a, b) = rayon::join(
        || mont.from_mont(&mont.pow_secret(&mont.to_mont(&u), &r_exp)),
        || mont.from_mont(&mont.pow_secret(&mont.to_mont(pk.v()), &r_exp)),
    );
    let e = challenge(pk, holder, digest, &u, &w, &a, &b);
    let z = r.get() + e * witness.get();
    DecryptionProof { a, b, z }
}

/// Checks a proof; the error says which check failed.
pub(crate) fn verify(
    pk: &PublicKey,
    holder: ShareIndex,
    ciphertexts: &[Ciphertext],
    partials: &[BigUint],
    digest: &[u8; 32],
    proof: &DecryptionProof,
) -> Result<(), &'static str> {
    let mont = pk.mont();
    if !pk.is_unit(&proof.a) || !pk.is_unit(&proof.b) {
        return Err("proof commitment is not a unit of Z*_{n²}");
    }
    // z < 2^{|r|} + 2^κ·Δ·s_i < 2^{|r| + 1}: a longer z is malformed (and would cost the
    // verifier an unbounded exponentiation).
    if proof.z.bits() > r_bits(pk) + 1 {
        return Err("proof response is too long");
    }
    let (u, w) = statement(pk, ciphertexts, partials, digest);
    let e = challenge(pk, holder, digest, &u, &w, &proof.a, &proof.b);
    let vi = pk.verification_key(holder);
    let (first, second) = rayon::join(
        || mont.pow_mod(&u, &proof.z) == mont.mul_mod(&proof.a, &mont.pow_mod(&w, &e)),
        || mont.pow_mod(pk.v(), &proof.z) == mont.mul_mod(&proof.b, &mont.pow_mod(vi, &e)),
    );
    if !first {
        return Err("proof check U^z = a·W^e failed");
    }
    if !second {
        return Err("proof check v^z = b·v_i^e failed");
    }
    Ok(())
}
