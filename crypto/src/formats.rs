//! File formats (placeholder while written).
