//! The IDX files of MNIST and Fashion-MNIST.
//!
//! An IDX file is a big-endian header — the magic number `0x0000_08DD` (`08`: unsigned bytes,
//! `DD`: the number of dimensions), then one `u32` per dimension — followed by the data, one
//! byte per value. Images have three dimensions (count, rows, columns), labels one.
//!
//! Every check is made against the bytes actually read, so a corrupt header can neither panic
//! nor make the loader allocate more than a small multiple of the file's length.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use ndarray::Array2;

use super::{DataError, Dataset};

/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
const LABELS_MAGIC: u32 = 0x0000_0801;
/// Deflate expands at most 1032:1, which bounds what a `.gz` file can decompress to.
const MAX_DEFLATE_RATIO: u64 = 1032;
/// Both MNIST and Fashion-MNIST have ten classes.
const MNIST_CLASSES: usize = 10;

/// Loads MNIST from `dir` as `(train, test)`, 60,000 and 10,000 images of 28 × 28 = 784
/// pixels scaled by 1/255, ten classes.
///
/// `dir` holds `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`
/// and `t10k-labels-idx1-ubyte`, each possibly gzipped with a `.gz` suffix
/// (`scripts/fetch-datasets.sh` puts them in `data/mnist/`).
pub fn mnist(dir: impl AsRef<Path>) -> Result<(Dataset, Dataset), DataError> {
    load_split(dir.as_ref(), "mnist")
}

/// Loads Fashion-MNIST from `dir` as `(train, test)`; the files are named and shaped as for
/// [`mnist`] (`scripts/fetch-datasets.sh` puts them in `data/fashion-mnist/`).
pub fn fashion_mnist(dir: impl AsRef<Path>) -> Result<(Dataset, Dataset), DataError> {
    load_split(dir.as_ref(), "fashion-mnist")
}

fn load_split(dir: &Path, name: &str) -> Result<(Dataset, Dataset), DataError> {
    let load = |part: &str, prefix: &str| {
        load_idx(
            &find(dir, &format!("{prefix}-images-idx3-ubyte")),
            &find(dir, &format!("{prefix}-labels-idx1-ubyte")),
            format!("{name}-{part}"),
            MNIST_CLASSES,
        )
    };
    Ok((load("train", "train")?, load("test", "t10k")?))
}

/// `dir/file`, or `dir/file.gz` when only that exists; a missing file is reported by its plain
/// name.
fn find(dir: &Path, file: &str) -> PathBuf {
    let plain = dir.join(file);
    let gz = dir.join(format!("{file}.gz"));
    if !plain.exists() && gz.exists() {
        gz
    } else {
        plain
    }
}

/// Loads a dataset from an IDX image file (`u8`, three dimensions) and an IDX label file
/// (`u8`, one dimension), either possibly gzipped (by a `.gz` suffix). Pixels are scaled by
/// 1/255; every label must be below `num_classes`.
pub fn load_idx(
    images_path: &Path,
    labels_path: &Path,
    name: impl Into<String>,
    num_classes: usize,
) -> Result<Dataset, DataError> {
    let image_bytes = read(images_path)?;
    let (dims, pixels) = parse(images_path, &image_bytes, IMAGES_MAGIC)?;
    let label_bytes = read(labels_path)?;
    let (_, labels) = parse(labels_path, &label_bytes, LABELS_MAGIC)?;
    if dims[0] != labels.len() {
        return Err(DataError::IdxCountMismatch {
            images_path: images_path.into(),
            labels_path: labels_path.into(),
            images: dims[0],
            labels: labels.len(),
        });
    }
    if let Some((index, &label)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| usize::from(l) >= num_classes)
    {
        return Err(DataError::LabelOutOfRange {
            path: labels_path.into(),
            index,
            label,
            num_classes,
        });
    }
    let features = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
    // `parse` checked count·rows·columns = data length; ndarray also refuses a shape whose
    // non-zero axes overflow isize, possible when the count is 0.
    let features = dims[1]
        .checked_mul(dims[2])
        .and_then(|cols| Array2::from_shape_vec((dims[0], cols), features).ok())
        .ok_or_else(|| DataError::IdxSizeMismatch {
            path: images_path.into(),
            dims: dims.clone(),
            data_len: pixels.len(),
        })?;
    Dataset::new(name, features, labels.to_vec(), num_classes)
}

/// Reads a whole file, decompressing it if its name ends in `.gz`. A gzip stream is read no
/// further than deflate's maximum expansion of the file's length.
fn read(path: &Path) -> Result<Vec<u8>, DataError> {
    let io = |e| DataError::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    if path.extension().is_some_and(|e| e == "gz") {
        let len = file.metadata().map_err(io)?.len();
        GzDecoder::new(file)
            .take(len.saturating_mul(MAX_DEFLATE_RATIO))
            .read_to_end(&mut bytes)
            .map_err(io)?;
    } else {
        file.read_to_end(&mut bytes).map_err(io)?;
    }
    Ok(bytes)
}

/// Splits an IDX file into its dimensions and its data, checking the magic number and that
/// the product of the dimensions is exactly the data's length.
fn parse<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: u32,
) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let too_short = || DataError::IdxHeaderTooShort {
        path: path.into(),
        len: bytes.len(),
    };
    let word = |i: usize| -> Option<u32> {
        let b = bytes.get(4 * i..4 * i + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let found = word(0).ok_or_else(too_short)?;
    if found != magic {
        return Err(DataError::IdxBadMagic {
            path: path.into(),
            expected: magic,
            found,
        });
    }
    let ndims = (magic & 0xff) as usize;
    let dims: Vec<usize> = (1..=ndims)
        .map(|i| word(i).map(|d| d as usize))
        .collect::<Option<_>>()
        .ok_or_else(too_short)?;
    let data = &bytes[4 * (ndims + 1)..];
    let size = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if size != Some(data.len()) {
        return Err(DataError::IdxSizeMismatch {
            path: path.into(),
            dims,
            data_len: data.len(),
        });
    }
    Ok((dims, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use proptest::prelude::*;
    use std::io::Write;
    use tempfile::TempDir;

    fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = magic.to_be_bytes().to_vec();
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    /// Three 2×2 images and their labels.
    fn images() -> Vec<u8> {
        idx(
            IMAGES_MAGIC,
            &[3, 2, 2],
            &[0, 255, 51, 102, 1, 2, 3, 4, 9, 9, 9, 9],
        )
    }
    fn labels() -> Vec<u8> {
        idx(LABELS_MAGIC, &[3], &[7, 0, 9])
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// Writes the four MNIST files (`.gz` when `gzip`) into a fresh directory.
    fn mnist_dir(train_images: &[u8], train_labels: &[u8], gzip: bool) -> TempDir {
        let dir = TempDir::new().unwrap();
        let files = [
            ("train-images-idx3-ubyte", train_images),
            ("train-labels-idx1-ubyte", train_labels),
            ("t10k-images-idx3-ubyte", &images()[..]),
            ("t10k-labels-idx1-ubyte", &labels()[..]),
        ];
        for (name, bytes) in files {
            if gzip {
                std::fs::write(dir.path().join(format!("{name}.gz")), gz(bytes)).unwrap();
            } else {
                std::fs::write(dir.path().join(name), bytes).unwrap();
            }
        }
        dir
    }

    fn load_train(images: &[u8], labels: &[u8]) -> Result<Dataset, DataError> {
        let dir = mnist_dir(images, labels, false);
        mnist(dir.path()).map(|(train, _)| train)
    }

    #[test]
    fn loads_valid_files_scaled() {
        let (train, test) = mnist(mnist_dir(&images(), &labels(), false).path()).unwrap();
        assert_eq!(
            (train.len(), train.num_features(), train.num_classes()),
            (3, 4, 10)
        );
        assert_eq!(train.labels(), &[7, 0, 9]);
        assert_eq!(train.features().row(0).to_vec(), vec![0.0, 1.0, 0.2, 0.4]);
        assert_eq!((train.name(), test.name()), ("mnist-train", "mnist-test"));
        assert_eq!(test.len(), 3);
    }

    #[test]
    fn loads_gzipped_files() {
        let dir = mnist_dir(&images(), &labels(), true);
        let (train, test) = fashion_mnist(dir.path()).unwrap();
        assert_eq!(train.labels(), &[7, 0, 9]);
        assert_eq!((train.name(), test.len()), ("fashion-mnist-train", 3));
    }

    #[test]
    fn missing_file_is_named() {
        let dir = TempDir::new().unwrap();
        let err = mnist(dir.path()).unwrap_err();
        assert!(matches!(err, DataError::Io { .. }));
        assert!(err.to_string().contains("train-images-idx3-ubyte"), "{err}");
    }

    #[test]
    fn wrong_magic() {
        let err = load_train(&labels(), &labels()).unwrap_err();
        assert!(matches!(
            err,
            DataError::IdxBadMagic {
                expected: 0x803,
                found: 0x801,
                ..
            }
        ));
        assert!(
            err.to_string()
                .contains("train-images-idx3-ubyte: magic number 0x00000801")
        );
        // An image file where labels are expected is named too.
        let err = load_train(&images(), &images()).unwrap_err();
        assert!(
            err.to_string().contains("train-labels-idx1-ubyte: magic"),
            "{err}"
        );
    }

    #[test]
    fn truncated_or_padded_data() {
        let mut short = images();
        short.pop();
        let err = load_train(&short, &labels()).unwrap_err();
        assert!(
            matches!(err, DataError::IdxSizeMismatch { data_len: 11, .. }),
            "{err}"
        );
        let mut long = labels();
        long.push(0);
        let err = load_train(&images(), &long).unwrap_err();
        assert!(
            err.to_string()
                .contains("train-labels-idx1-ubyte: dimensions [3]"),
            "{err}"
        );
    }

    #[test]
    fn truncated_header() {
        for len in [0, 3, 8, 15] {
            let err = load_train(&images()[..len], &labels()).unwrap_err();
            assert!(
                matches!(err, DataError::IdxHeaderTooShort { .. }),
                "{len}: {err}"
            );
        }
    }

    #[test]
    fn truncated_gzip_stream() {
        let dir = mnist_dir(&images(), &labels(), true);
        let path = dir.path().join("train-images-idx3-ubyte.gz");
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() / 2]).unwrap();
        let err = mnist(dir.path()).unwrap_err();
        assert!(matches!(err, DataError::Io { .. }));
        assert!(
            err.to_string().contains("train-images-idx3-ubyte.gz"),
            "{err}"
        );
    }

    #[test]
    fn counts_that_disagree() {
        let two_labels = idx(LABELS_MAGIC, &[2], &[1, 2]);
        let err = load_train(&images(), &two_labels).unwrap_err();
        assert!(matches!(
            err,
            DataError::IdxCountMismatch {
                images: 3,
                labels: 2,
                ..
            }
        ));
        assert!(err.to_string().contains("has 3 images but"), "{err}");
    }

    #[test]
    fn absurd_dimensions_are_refused_without_allocating() {
        for dims in [
            [u32::MAX; 3],
            [1 << 16, 1 << 16, 1 << 16],
            [0x4000_0000, 4, 1],
        ] {
            let bytes = idx(IMAGES_MAGIC, &dims, &[1, 2, 3]);
            let err = load_train(&bytes, &labels()).unwrap_err();
            assert!(
                matches!(err, DataError::IdxSizeMismatch { data_len: 3, .. }),
                "{err}"
            );
        }
        // No images of 2³²−1 × 2³²−1 pixels: the size checks out (0) but the shape cannot exist.
        let empty = idx(IMAGES_MAGIC, &[0, u32::MAX, u32::MAX], &[]);
        let err = load_train(&empty, &idx(LABELS_MAGIC, &[0], &[])).unwrap_err();
        assert!(
            matches!(err, DataError::IdxSizeMismatch { data_len: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn label_out_of_range() {
        let bad = idx(LABELS_MAGIC, &[3], &[1, 10, 2]);
        let err = load_train(&images(), &bad).unwrap_err();
        assert!(matches!(
            err,
            DataError::LabelOutOfRange {
                index: 1,
                label: 10,
                ..
            }
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(11),
            ..ProptestConfig::default()
        })]

        /// Arbitrary bytes, and valid headers with arbitrary dimensions, never panic.
        #[test]
        fn parse_never_panics(
            noise in proptest::collection::vec(any::<u8>(), 0..64),
            dims in proptest::collection::vec(any::<u32>(), 3),
        ) {
            let path = Path::new("fuzz");
            let _ = parse(path, &noise, IMAGES_MAGIC);
            let bytes = idx(IMAGES_MAGIC, &dims, &noise);
            if let Ok((d, data)) = parse(path, &bytes, IMAGES_MAGIC) {
                prop_assert_eq!(d.iter().product::<usize>(), data.len());
            }
        }
    }

    /// Loads the genuine data fetched by `scripts/fetch-datasets.sh`, if present:
    /// `cargo test -p spddl-client-trainer -- --ignored real_`.
    fn real(
        dir: &str,
        load: fn(&Path) -> Result<(Dataset, Dataset), DataError>,
        counts: [[usize; 10]; 2],
        first_labels: [[u8; 3]; 2],
    ) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data")
            .join(dir);
        if !dir.exists() {
            eprintln!(
                "skipped: {} is absent; run scripts/fetch-datasets.sh",
                dir.display()
            );
            return;
        }
        let (train, test) = load(&dir).unwrap();
        assert_eq!((train.len(), test.len()), (60_000, 10_000));
        for (d, (counts, first)) in [train, test].iter().zip(counts.iter().zip(first_labels)) {
            assert_eq!(d.num_features(), 784);
            assert_eq!(&d.class_counts()[..], &counts[..]);
            assert_eq!(d.labels()[..3], first);
        }
    }

    #[test]
    #[ignore = "needs data/mnist from scripts/fetch-datasets.sh"]
    fn real_mnist() {
        let train = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
        let test = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];
        real("mnist", |d| mnist(d), [train, test], [[5, 0, 4], [7, 2, 1]]);
    }

    #[test]
    #[ignore = "needs data/fashion-mnist from scripts/fetch-datasets.sh"]
    fn real_fashion_mnist() {
        let counts = [[6000; 10], [1000; 10]];
        real(
            "fashion-mnist",
            |d| fashion_mnist(d),
            counts,
            [[9, 0, 0], [9, 2, 1]],
        );
    }
}
