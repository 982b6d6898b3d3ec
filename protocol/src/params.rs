//! Content-defined chunking parameters, recorded in every manifest so a
//! client (and `ferry verify`) knows how a version was cut.

use crate::error::DecodeError;

/// Smallest allowed minimum chunk size (fastcdc v2020's lower bound).
pub const MIN_MIN: u32 = 64;
/// Largest allowed maximum chunk size: also the largest chunk on the wire.
pub const MAX_MAX: u32 = 16 * 1024 * 1024;

/// FastCDC v2020 parameters: minimum, average (target) and maximum chunk size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl Default for ChunkerParams {
    /// 4 KiB / 16 KiB / 64 KiB: chosen with `ferry tune` on real release
    /// pairs (docs/benchmarks.md): a third to a quarter of the bytes of
    /// 64 KiB chunks on edited text files, 4-13% more on rebuilt native
    /// libraries.
    fn default() -> Self {
        ChunkerParams {
            min: 4 * 1024,
            avg: 16 * 1024,
            max: 64 * 1024,
        }
    }
}

impl ChunkerParams {
    /// Parameters for an average size, with min = avg/4 and max = avg*4.
    pub fn with_avg(avg: u32) -> Result<Self, DecodeError> {
        let p = ChunkerParams {
            min: avg / 4,
            avg,
            max: avg.saturating_mul(4),
        };
        p.validate()?;
        Ok(p)
    }

    /// Checks the ranges fastcdc v2020 supports: all even, 64 <= min <= 1 MiB,
    /// 256 B <= avg <= 4 MiB, 1 KiB <= max <= 16 MiB, and min <= avg <= max.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let bad = |r: String| Err(DecodeError::invalid("chunker parameters", r));
        let ChunkerParams { min, avg, max } = *self;
        if min % 2 != 0 || avg % 2 != 0 || max % 2 != 0 {
            return bad(format!("min/avg/max must be even, got {min}/{avg}/{max}"));
        }
        if !(MIN_MIN..=1024 * 1024).contains(&min) {
            return bad(format!("min {min} outside 64 B ..= 1 MiB"));
        }
        if !(256..=4 * 1024 * 1024).contains(&avg) {
            return bad(format!("avg {avg} outside 256 B ..= 4 MiB"));
        }
        if !(1024..=MAX_MAX).contains(&max) {
            return bad(format!("max {max} outside 1 KiB ..= 16 MiB"));
        }
        if !(min <= avg && avg <= max) {
            return bad(format!("need min <= avg <= max, got {min}/{avg}/{max}"));
        }
        Ok(())
    }
}

impl std::fmt::Display for ChunkerParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.min, self.avg, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        ChunkerParams::default().validate().unwrap();
        ChunkerParams::with_avg(4096).unwrap();
    }

    #[test]
    fn rejects_bad_ranges() {
        let p = |min, avg, max| ChunkerParams { min, avg, max }.validate();
        assert!(p(65, 256, 1024).is_err());
        assert!(p(32, 256, 1024).is_err());
        assert!(p(4096, 1024, 8192).is_err());
        assert!(p(64, 256, 32 * 1024 * 1024).is_err());
        assert!(p(64, 256, 1024).is_ok());
    }
}
