//! A labelled dataset held in memory: one row of features per sample.

use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;

use super::DataError;

/// Samples with features in `[0, 1]` and class labels.
///
/// Invariants, checked by [`Dataset::new`] and kept by every method:
/// - `features.nrows() == labels.len()` (one row per sample);
/// - every label is below `num_classes`, and `num_classes ≤ 256`;
/// - every feature is a finite value in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    name: String,
    features: Array2<f32>,
    labels: Vec<u8>,
    num_classes: usize,
}

impl Dataset {
    /// Builds a dataset, refusing arguments that break the invariants above.
    pub fn new(
        name: impl Into<String>,
        features: Array2<f32>,
        labels: Vec<u8>,
        num_classes: usize,
    ) -> Result<Self, DataError> {
        let name = name.into();
        let invalid = |reason: String| DataError::InvalidDataset {
            name: name.clone(),
            reason,
        };
        if features.nrows() != labels.len() {
            return Err(invalid(format!(
                "{} feature rows but {} labels",
                features.nrows(),
                labels.len()
            )));
        }
        if num_classes == 0 || num_classes > 256 {
            return Err(invalid(format!("{num_classes} classes is not in 1..=256")));
        }
        if let Some((i, &l)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| usize::from(l) >= num_classes)
        {
            return Err(invalid(format!(
                "label {l} of sample {i} is not below {num_classes}"
            )));
        }
        if let Some(x) = features.iter().find(|x| !(0.0..=1.0).contains(*x)) {
            return Err(invalid(format!("feature {x} is outside [0, 1]")));
        }
        Ok(Self {
            name,
            features,
            labels,
            num_classes,
        })
    }

    /// The dataset's name, for logs and reports.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The features: one row per sample, values in `[0, 1]`.
    pub fn features(&self) -> &Array2<f32> {
        &self.features
    }

    /// The labels, one per row of [`features`](Self::features), each below
    /// [`num_classes`](Self::num_classes).
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The number of classes.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the dataset has no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The number of features per sample.
    pub fn num_features(&self) -> usize {
        self.features.ncols()
    }

    /// The number of samples of each class, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &l in &self.labels {
            counts[usize::from(l)] += 1;
        }
        counts
    }

    /// The samples at `indices`, in that order (repeats allowed), with the same name and
    /// number of classes.
    ///
    /// # Panics
    ///
    /// If an index is not below [`len`](Self::len), like slice indexing.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        Dataset {
            name: self.name.clone(),
            features: self.features.select(Axis(0), indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            num_classes: self.num_classes,
        }
    }

    /// Splits into `(train, test)`, stratified: each class puts `round(test_fraction · count)`
    /// of its samples, chosen at random with `seed`, into the test set. Both sets keep the
    /// dataset's order. The same seed gives the same split.
    pub fn train_test_split(
        &self,
        test_fraction: f64,
        seed: u64,
    ) -> Result<(Dataset, Dataset), DataError> {
        if !(0.0..=1.0).contains(&test_fraction) {
            return Err(DataError::InvalidTestFraction(test_fraction));
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut by_class = vec![Vec::new(); self.num_classes];
        for (i, &l) in self.labels.iter().enumerate() {
            by_class[usize::from(l)].push(i);
        }
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for mut members in by_class {
            members.shuffle(&mut rng);
            // Rounded count is at most members.len() since test_fraction ≤ 1.
            let n_test = (test_fraction * members.len() as f64).round() as usize;
            test.extend_from_slice(&members[..n_test]);
            train.extend_from_slice(&members[n_test..]);
        }
        train.sort_unstable();
        test.sort_unstable();
        Ok((self.subset(&train), self.subset(&test)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn toy() -> Dataset {
        let features = Array2::from_shape_fn((20, 2), |(i, j)| (i * 2 + j) as f32 / 40.0);
        let labels = (0..20).map(|i| (i % 3) as u8).collect();
        Dataset::new("toy", features, labels, 3).unwrap()
    }

    #[test]
    fn new_refuses_broken_invariants() {
        let err = |r: Result<Dataset, DataError>| r.unwrap_err().to_string();
        let f = array![[0.0f32, 1.0], [0.5, 0.25]];
        assert!(err(Dataset::new("a", f.clone(), vec![0], 2)).contains("2 feature rows but 1"));
        assert!(err(Dataset::new("a", f.clone(), vec![0, 2], 2)).contains("label 2 of sample 1"));
        assert!(err(Dataset::new("a", f.clone(), vec![0, 1], 0)).contains("0 classes"));
        let bad = array![[0.0f32, 1.5], [0.5, f32::NAN]];
        assert!(err(Dataset::new("a", bad, vec![0, 1], 2)).contains("outside [0, 1]"));
        let nan = array![[0.0f32, f32::NAN]];
        assert!(Dataset::new("a", nan, vec![0], 2).is_err());
        assert_eq!(Dataset::new("a", f, vec![0, 1], 2).unwrap().len(), 2);
    }

    #[test]
    fn subset_picks_rows_and_labels() {
        let d = toy();
        let s = d.subset(&[5, 0, 5]);
        assert_eq!(s.len(), 3);
        assert_eq!(s.labels(), &[2, 0, 2]);
        assert_eq!(s.features().row(0), d.features().row(5));
        assert_eq!(s.features().row(1), d.features().row(0));
        assert_eq!((s.name(), s.num_classes(), s.num_features()), ("toy", 3, 2));
    }

    #[test]
    fn split_is_stratified_seeded_and_disjoint() {
        let d = toy(); // class counts 7, 7, 6
        let (train, test) = d.train_test_split(0.3, 1).unwrap();
        assert_eq!(test.class_counts(), vec![2, 2, 2]);
        assert_eq!(train.class_counts(), vec![5, 5, 4]);
        assert_eq!(
            d.train_test_split(0.3, 1).unwrap(),
            (train.clone(), test.clone())
        );
        assert_ne!(d.train_test_split(0.3, 2).unwrap().1, test);
        // Every row lands on exactly one side: features identify rows here.
        let mut firsts: Vec<f32> = train
            .features()
            .column(0)
            .iter()
            .chain(test.features().column(0))
            .copied()
            .collect();
        firsts.sort_by(f32::total_cmp);
        let all: Vec<f32> = d.features().column(0).to_vec();
        assert_eq!(firsts, all);
    }

    #[test]
    fn split_edges() {
        let d = toy();
        assert_eq!(d.train_test_split(0.0, 0).unwrap().1.len(), 0);
        assert_eq!(d.train_test_split(1.0, 0).unwrap().0.len(), 0);
        assert!(matches!(
            d.train_test_split(1.5, 0),
            Err(DataError::InvalidTestFraction(_))
        ));
        assert!(d.train_test_split(f64::NAN, 0).is_err());
    }
}
