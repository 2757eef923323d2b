//! The UCI 8×8 handwritten digits, embedded in the binary.
//!
//! Alpaydin, E. & Kaynak, C. (1998), *Optical Recognition of Handwritten Digits*, UCI Machine
//! Learning Repository (CC BY 4.0); the file `digits.csv.gz` as distributed with scikit-learn.

use std::io::Read;

use flate2::read::GzDecoder;
use ndarray::Array2;

use super::{DataError, Dataset};

/// `client-trainer/data/digits.csv.gz`: 1,797 lines of 64 pixel values in `0..=16` and a label,
/// no header.
const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");

/// Pixels per image (8 × 8).
const PIXELS: usize = 64;

/// The 1,797 UCI 8×8 digits (10 classes, 64 features), features scaled from `0..=16` to
/// `[0, 1]` by 1/16. Embedded in the binary, so nothing needs downloading.
///
/// Source: Alpaydin, E. & Kaynak, C. (1998), *Optical Recognition of Handwritten Digits*,
/// UCI Machine Learning Repository (CC BY 4.0); the file as distributed with scikit-learn.
///
/// ```
/// let digits = spddl_client_trainer::data::digits()?;
/// assert_eq!((digits.len(), digits.num_features(), digits.num_classes()), (1797, 64, 10));
/// # Ok::<(), spddl_client_trainer::data::DataError>(())
/// ```
pub fn digits() -> Result<Dataset, DataError> {
    let mut csv = String::new();
    GzDecoder::new(DIGITS_CSV_GZ)
        .read_to_string(&mut csv)
        .map_err(|e| DataError::io("digits.csv.gz (embedded)", e))?;
    let (features, labels) = parse_csv(&csv)?;
    Dataset::new("digits", features, labels, 10)
}

/// Parses lines of 64 integer pixels in `0..=16` followed by a label in `0..10`.
fn parse_csv(csv: &str) -> Result<(Array2<f32>, Vec<u8>), DataError> {
    let mut features = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in csv.lines().enumerate() {
        let bad = |reason: String| DataError::DigitsCsv {
            line: i + 1,
            reason,
        };
        let fields: Vec<&str> = line.trim().split(',').collect();
        if fields.len() != PIXELS + 1 {
            return Err(bad(format!(
                "{} fields, expected {}",
                fields.len(),
                PIXELS + 1
            )));
        }
        for field in &fields[..PIXELS] {
            match field.trim().parse::<u8>() {
                Ok(v) if v <= 16 => features.push(f32::from(v) / 16.0),
                _ => return Err(bad(format!("pixel {field:?} is not an integer in 0..=16"))),
            }
        }
        match fields[PIXELS].trim().parse::<u8>() {
            Ok(l) if l < 10 => labels.push(l),
            _ => return Err(bad(format!("label {:?} is not in 0..10", fields[PIXELS]))),
        }
    }
    // Cannot fail: every accepted line pushed exactly PIXELS features and one label.
    let features = Array2::from_shape_vec((labels.len(), PIXELS), features)
        .expect("PIXELS features per label");
    Ok((features, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_digits_have_the_published_shape() {
        let d = digits().unwrap();
        assert_eq!(d.len(), 1797);
        assert_eq!(d.num_features(), 64);
        assert_eq!(d.num_classes(), 10);
        assert_eq!(d.name(), "digits");
        assert_eq!(
            d.class_counts(),
            vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
        );
        assert!(d.features().iter().all(|x| (0.0..=1.0).contains(x)));
        // Both ends of the scale occur, so the 1/16 scaling is the right one.
        assert!(d.features().iter().any(|&x| x == 1.0));
        // First sample: a zero whose first row is 0,0,5,13,9,1,0,0.
        assert_eq!(d.labels()[0], 0);
        let first: Vec<f32> = d.features().row(0).iter().take(8).copied().collect();
        assert_eq!(
            first,
            [0.0, 0.0, 5.0, 13.0, 9.0, 1.0, 0.0, 0.0].map(|v| v / 16.0)
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let line = |pixel: &str, label: &str| {
            let mut fields = vec!["0"; PIXELS];
            fields[3] = pixel;
            format!("{},{label}\n", fields.join(","))
        };
        let good = line("16", "9");
        assert_eq!(parse_csv(&good).unwrap().1, vec![9]);
        let err = |csv: String| parse_csv(&csv).unwrap_err().to_string();
        assert_eq!(
            err(format!("{good}{}", line("17", "1"))),
            "digits.csv.gz line 2: pixel \"17\" is not an integer in 0..=16"
        );
        assert!(err(line("0", "10")).contains("line 1: label \"10\""));
        assert!(err("1,2,3\n".into()).contains("line 1: 3 fields, expected 65"));
    }
}
