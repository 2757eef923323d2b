#!/usr/bin/env python3
"""GMP reference figures for the Paillier operations SPDDL performs, measured on this machine.

Copied from the project's shared reference script (shared/anchors/gmp_paillier.py) so users
have it; the measurement is unchanged. Added here: a "cpu" field on every line, `--repeat`
(several measurements of each op, the median printed) and `--compare FILE`, which reads
`spddl bench crypto --json` lines and prints SPDDL / GMP per op (matching SPDDL's
"anchor_op" field, single-thread lines only).

Single thread, gmpy2 (GMP). Prints one JSON object per line:
  {"op": ..., "bits": ..., "ops_per_s": ...}
Ops:
  enc_textbook      (1 + m n) r^n mod n^2, r^n computed per call
  enc_djn_fixedbase (1 + m n) h_s^a mod n^2, a of |n|/2 bits, 8-bit fixed-base windows
  add               c1 c2 mod n^2
  partial_dec       c^(2 Delta s_i) mod n^2, s_i of |n m| bits, Delta = l!
  modexp_full       x^e mod n^2 with e of |n^2| bits (the floor under partial_dec)

Usage: python3 gmp_paillier.py [--bits 2048] [--parties 5] [--seconds 2] [--repeat 1]
                               [--compare spddl.jsonl]
Needs gmpy2 (pip install gmpy2). The machine is shared: compare ratios taken in one run.
"""
import argparse
import json
import math
import secrets
import statistics
import sys
import time

import gmpy2
from gmpy2 import mpz, powmod


def random_prime(bits):
    while True:
        p = gmpy2.next_prime(mpz(secrets.randbits(bits)) | (mpz(1) << (bits - 1)))
        if p.bit_length() == bits:
            return p


def rate(fn, seconds):
    fn()  # warm-up
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and n >= 3:
            return n / elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bits", type=int, default=2048)
    ap.add_argument("--parties", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=1,
                    help="measure each op this many times and print the median")
    ap.add_argument("--compare", metavar="FILE",
                    help="spddl bench crypto --json output: print SPDDL / GMP per op")
    args = ap.parse_args()

    bits = args.bits
    # Plain primes are enough for timing: the operations' cost depends only on sizes.
    p, q = random_prime(bits // 2), random_prime(bits // 2)
    n = p * q
    n2 = n * n
    m_order = (p - 1) * (q - 1) // 4
    plaintext = mpz(secrets.randbits(bits - 8))

    x = mpz(secrets.randbits(bits)) % n
    h_s = powmod((-x * x) % n, n, n2)
    exp_bits, w = bits // 2, 8
    table, base = [], h_s
    for _ in range((exp_bits + w - 1) // w):
        row, acc = [mpz(1)], mpz(1)
        for _ in range(1, 1 << w):
            acc = acc * base % n2
            row.append(acc)
        table.append(row)
        base = powmod(base, 1 << w, n2)

    def fixed_base(a):
        r, i = mpz(1), 0
        while a:
            digit = int(a & 0xFF)
            if digit:
                r = r * table[i][digit] % n2
            a >>= 8
            i += 1
        return r

    def enc_textbook():
        r = mpz(secrets.randbits(bits)) % n
        return (1 + plaintext * n) % n2 * powmod(r, n, n2) % n2

    def enc_djn():
        return (1 + plaintext * n) % n2 * fixed_base(mpz(secrets.randbits(exp_bits))) % n2

    c1, c2 = enc_djn(), enc_djn()
    delta = math.factorial(args.parties)
    share = mpz(secrets.randbits((n * m_order).bit_length()))
    exponent = 2 * delta * share
    full_exp = mpz(secrets.randbits(n2.bit_length()))

    ops = {
        "enc_textbook": enc_textbook,
        "enc_djn_fixedbase": enc_djn,
        "add": lambda: c1 * c2 % n2,
        "partial_dec": lambda: powmod(c1, exponent, n2),
        "modexp_full": lambda: powmod(c1, full_exp, n2),
    }
    results = {op: statistics.median(rate(fn, args.seconds) for _ in range(args.repeat))
               for op, fn in ops.items()}
    cpu = cpu_model()
    for op, ops_per_s in results.items():
        print(json.dumps({"impl": "gmpy2", "op": op, "bits": bits, "parties": args.parties,
                          "gmp": gmpy2.mp_version(), "cpu": cpu,
                          "ops_per_s": round(ops_per_s, 1)}))
    if args.compare:
        compare(args.compare, bits, results)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def compare(path, bits, gmp):
    """SPDDL's single-thread rate over GMP's for every op both measured."""
    print(f"{'spddl op':<18} {'kernel':<16} {'spddl /s':>12} {'gmp op':<18} {'gmp /s':>12} "
          f"{'spddl / gmp':>11}", file=sys.stderr)
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            anchor = row.get("anchor_op")
            if row.get("threads") != 1 or row.get("bits") != bits or anchor not in gmp:
                continue
            ratio = row["ops_per_s"] / gmp[anchor]
            print(f"{row['op']:<18} {row.get('kernel', '?'):<16} {row['ops_per_s']:>12,.1f} "
                  f"{anchor:<18} {gmp[anchor]:>12,.1f} {ratio:>10.2f}x", file=sys.stderr)

if __name__ == "__main__":
    main()
