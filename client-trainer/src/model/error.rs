//! The error type of the model room.

/// What went wrong building, feeding or training a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A flat parameter vector (or an update, or a gradient) has the wrong length.
    #[error("parameter vector has {got} values, expected {expected}")]
    ParamLength {
        /// The number of parameters of the model.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// The feature matrix has the wrong number of columns.
    #[error("features have {got} columns, the model expects {expected} inputs")]
    FeatureWidth {
        /// The model's number of inputs.
        expected: usize,
        /// The number of columns given.
        got: usize,
    },
    /// The feature matrix and the label slice differ in length.
    #[error("{features} feature rows but {labels} labels")]
    LabelCount {
        /// Rows of the feature matrix.
        features: usize,
        /// Length of the label slice.
        labels: usize,
    },
    /// A label is not one of the model's classes.
    #[error("label {label} of sample {sample} is not below the number of classes {classes}")]
    LabelOutOfRange {
        /// Index of the offending sample.
        sample: usize,
        /// Its label.
        label: u8,
        /// The model's number of classes.
        classes: usize,
    },
    /// A loss or a gradient was asked of zero samples.
    #[error("no samples: loss and gradient need at least one")]
    EmptyBatch,
    /// A model description that cannot be built.
    #[error("invalid model spec: {0}")]
    InvalidSpec(&'static str),
    /// An optimizer, training or clipping setting out of range.
    #[error("invalid training setting: {0}")]
    InvalidConfig(&'static str),
    /// A NaN or infinity where finite values are required (training diverged).
    #[error("{0} contains NaN or infinity")]
    NonFinite(&'static str),
}
