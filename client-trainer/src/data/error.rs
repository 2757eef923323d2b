//! The data room's error type: every variant names the file or parameter at fault.

use std::path::PathBuf;

/// Everything that can go wrong loading, splitting or partitioning a dataset.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file could not be opened, read or decompressed.
    ///
    /// The message already says why, so `error` is not also given as the `source()`: an
    /// error chain printed in full (`{:#}`) says it once.
    #[error("cannot read {}: {error}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A line of the embedded digits CSV that does not parse.
    #[error("digits.csv.gz line {line}: {reason}")]
    DigitsCsv {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// An IDX file shorter than its header.
    #[error("{}: {len} bytes is too short for an IDX header", .path.display())]
    IdxHeaderTooShort {
        /// The file.
        path: PathBuf,
        /// Its (decompressed) length in bytes.
        len: usize,
    },
    /// An IDX file whose magic number is not the one expected.
    #[error("{}: magic number {found:#010x}, expected {expected:#010x}", .path.display())]
    IdxBadMagic {
        /// The file.
        path: PathBuf,
        /// The magic number its kind of file must have.
        expected: u32,
        /// The magic number it has.
        found: u32,
    },
    /// An IDX file whose header dimensions do not match its data: truncated, trailing bytes,
    /// or dimensions whose product overflows.
    #[error("{}: dimensions {dims:?} do not match the {data_len} data bytes", .path.display())]
    IdxSizeMismatch {
        /// The file.
        path: PathBuf,
        /// The dimensions its header declares.
        dims: Vec<usize>,
        /// The number of bytes after the header.
        data_len: usize,
    },
    /// An image file and a label file that hold different numbers of samples.
    #[error(
        "{} has {images} images but {} has {labels} labels",
        .images_path.display(),
        .labels_path.display()
    )]
    IdxCountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// The label file.
        labels_path: PathBuf,
        /// Number of images.
        images: usize,
        /// Number of labels.
        labels: usize,
    },
    /// A label file with a label outside `0..num_classes`.
    #[error("{}: label {label} of sample {index} is not below {num_classes}", .path.display())]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// The sample's position.
        index: usize,
        /// The label found.
        label: u8,
        /// The number of classes of the dataset.
        num_classes: usize,
    },
    /// Arguments to [`Dataset::new`](super::Dataset::new) that break its invariants.
    #[error("invalid dataset {name}: {reason}")]
    InvalidDataset {
        /// The dataset's name.
        name: String,
        /// Which invariant is broken.
        reason: String,
    },
    /// A test fraction outside `[0, 1]`.
    #[error("test fraction {0} is outside [0, 1]")]
    InvalidTestFraction(f64),
    /// Partitioning parameters that cannot give every client at least one sample, or a list of
    /// client indices that is not a partition.
    #[error("invalid partition: {0}")]
    InvalidPartition(String),
}

impl DataError {
    /// Wraps an IO error with the file it came from.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            error: source,
        }
    }
}
