//! Datasets and partitioning (being written).
