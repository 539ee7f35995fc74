//! A sensor's valid range.

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// The inclusive range of values a sensor can physically report. A reading
/// outside it is rejected, never stored. Either bound may be open.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ValidRange {
    min: Option<f64>,
    max: Option<f64>,
}

impl ValidRange {
    /// Builds a range; both bounds finite and `min < max` when both are set.
    pub fn new(min: Option<f64>, max: Option<f64>) -> Result<Self, ParseError> {
        for bound in [min, max].into_iter().flatten() {
            if !bound.is_finite() {
                return Err(ParseError::Range(format!("bound {bound} is not finite")));
            }
        }
        if let (Some(low), Some(high)) = (min, max)
            && low >= high
        {
            return Err(ParseError::Range(format!(
                "min ({low}) must be below max ({high})"
            )));
        }
        Ok(Self { min, max })
    }

    /// The lower bound, if any.
    pub fn min(&self) -> Option<f64> {
        self.min
    }

    /// The upper bound, if any.
    pub fn max(&self) -> Option<f64> {
        self.max
    }

    /// Whether `value` lies inside the range (bounds included).
    pub fn contains(&self, value: f64) -> bool {
        self.min.is_none_or(|low| value >= low) && self.max.is_none_or(|high| value <= high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_optional() {
        let range = ValidRange::new(Some(0.0), Some(25.0)).unwrap();
        assert!(range.contains(0.0) && range.contains(25.0) && range.contains(10.4));
        assert!(!range.contains(-0.1) && !range.contains(25.01));
        let open = ValidRange::new(None, Some(1.0)).unwrap();
        assert!(open.contains(-1e9) && !open.contains(2.0));
        assert!(ValidRange::default().contains(f64::MAX));
    }

    #[test]
    fn inverted_or_infinite_bounds_are_refused() {
        assert!(ValidRange::new(Some(5.0), Some(5.0)).is_err());
        assert!(ValidRange::new(Some(6.0), Some(5.0)).is_err());
        assert!(ValidRange::new(Some(f64::NAN), None).is_err());
        assert!(ValidRange::new(None, Some(f64::INFINITY)).is_err());
    }
}
