//! Exact FastCDC v2020 cut points, found faster than the fastcdc crate's
//! byte loop.
//!
//! fastcdc 5.0.0 (`v2020::cut`) restarts a gear hash at `min` bytes into each
//! chunk and tests `hash & mask == 0` at every later position: one long
//! dependency chain (shift, add) per byte, about 1.5 cycles a byte. This
//! module gives the same cut points with two observations:
//!
//! - The masks only look at bits below 48 (`MASKS` tops out at bit 47), and
//!   bit `b` of the hash depends only on the last `b + 1` bytes. So past the
//!   first 47 positions after the restart, the restarted hash and a *rolling*
//!   hash over the whole file agree on every bit a mask can see: whether a
//!   position is a cut candidate does not depend on where its chunk began.
//! - A rolling hash can therefore be computed over independent stretches of
//!   the input at once (several interleaved streams, each warmed up on the 47
//!   bytes before its stretch), which keeps the core busy instead of waiting
//!   on one chain, and on several threads for a big file.
//!
//! Candidates (positions whose rolling hash passes `mask_s & mask_l`, a test
//! both masks imply) are rare: 1 in 8192 positions for 16 KiB chunks. The
//! sequential part, [`GearSearch::cut`], then replays fastcdc's decision for
//! one chunk from the candidates: a plain restarted loop over the first 47
//! positions after `min`, then the first candidate that passes the mask of
//! its region (strict before `avg`, loose after), else `max`. The result is
//! identical to `fastcdc::v2020::cut` by construction, and the tests in
//! `tests/reference.rs` check it against the crate on random data and
//! parameters; the golden files in `tests/golden/` pin the cut points.

use fastcdc::v2020::{get_gear_with_seed, select_masks, Normalization};
use std::borrow::Cow;

/// Interleaved hash streams per candidate scan: enough independent chains
/// to hide the shift-add latency, few enough to stay in registers.
const STREAMS: usize = 4;
/// Bytes per stream in one group: long enough that warming each stream up
/// on the 47 bytes before it costs little (under 1%).
const PART: usize = 8192;
const GROUP: usize = STREAMS * PART;

/// A position whose rolling hash passed the candidate filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Offset in the slice the candidates were computed over.
    pub pos: usize,
    /// The rolling gear hash there (exact in the bits the masks test).
    pub hash: u64,
}

/// FastCDC v2020 (normalization level 1) with fastcdc's gear table and
/// masks, searched over precomputed candidates.
#[derive(Clone, Copy)]
pub(crate) struct GearSearch {
    gear: &'static [u64; 256],
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    /// Bits both masks test: a position can only be a cut if its hash has
    /// none of them set.
    filter: u64,
    /// The highest bit either mask tests (47 for all of fastcdc's masks):
    /// bit `b` of the hash depends on the last `b + 1` bytes, so for that
    /// many positions after `min` the restarted hash can differ from the
    /// rolling one in a tested bit, and a candidate's hash needs that many
    /// bytes before it.
    restart_span: usize,
}

impl std::fmt::Debug for GearSearch {
    /// Everything but the 256-entry table.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GearSearch")
            .field("min", &self.min)
            .field("avg", &self.avg)
            .field("max", &self.max)
            .field("mask_s", &format_args!("{:#x}", self.mask_s))
            .field("mask_l", &format_args!("{:#x}", self.mask_l))
            .finish_non_exhaustive()
    }
}

impl GearSearch {
    /// `min`, `avg` and `max` must be even and ordered (ChunkerParams
    /// validation guarantees it).
    pub fn new(min: usize, avg: usize, max: usize) -> Self {
        let (mask_s, mask_l) = select_masks(avg, Normalization::Level1);
        let gear = match get_gear_with_seed(0).0 {
            Cow::Borrowed(g) => g.try_into().expect("fastcdc's gear table has 256 entries"),
            Cow::Owned(_) => unreachable!("seed 0 borrows fastcdc's static table"),
        };
        let top_bit = 63 - (mask_s | mask_l).leading_zeros() as usize;
        GearSearch {
            gear,
            min,
            avg,
            max,
            mask_s,
            mask_l,
            filter: mask_s & mask_l,
            restart_span: top_bit,
        }
    }

    /// Appends the candidates at positions `lo..hi` of `data`, in order,
    /// with positions relative to `data`. The hash of a position is exact
    /// when the 47 bytes before it are in `data`; candidates nearer
    /// the start of `data` are only ever consulted by [`Self::cut`] when
    /// that condition holds.
    pub fn candidates(&self, data: &[u8], lo: usize, hi: usize, out: &mut Vec<Candidate>) {
        assert!(
            lo <= hi && hi <= data.len(),
            "candidate range out of bounds"
        );
        let mut pos = lo;
        while hi - pos >= GROUP {
            self.candidates_group(data, pos, out);
            pos += GROUP;
        }
        self.candidates_one(data, pos, hi, out);
    }

    /// Candidates of `data[at..at + GROUP]`: STREAMS interleaved hash chains
    /// over consecutive stretches of PART bytes, each warmed up on the bytes
    /// before its stretch. Fixed stretch lengths let every load address the
    /// group with a constant displacement, which keeps the loop in registers.
    fn candidates_group(&self, data: &[u8], at: usize, out: &mut Vec<Candidate>) {
        let group: &[u8; GROUP] = data[at..at + GROUP].try_into().expect("one group");
        let mut h: [u64; STREAMS] = std::array::from_fn(|k| self.warm_up(data, at + k * PART));
        let (g, filter) = (self.gear, self.filter);
        // One position of every stream. Separate branches: each is one fused
        // test-and-jump, almost never taken.
        macro_rules! step {
            ($j:expr) => {
                for k in 0..STREAMS {
                    h[k] = roll(h[k], g[group[$j + k * PART] as usize]);
                }
                for k in 0..STREAMS {
                    if h[k] & filter == 0 {
                        push_hit(out, at + $j + k * PART, h[k]);
                    }
                }
            };
        }
        // Two positions per iteration halve the loop's own overhead.
        for j in (0..PART).step_by(2) {
            step!(j);
            step!(j + 1);
        }
        // Each stream found its hits in order; interleaved, they need a sort
        // (hits are rare).
        let n = out.len();
        let mine = out.len() - out.iter().rev().take_while(|c| c.pos >= at).count();
        out[mine..n].sort_unstable_by_key(|c| c.pos);
    }

    /// One stream: for short ranges and the tail.
    fn candidates_one(&self, data: &[u8], lo: usize, hi: usize, out: &mut Vec<Candidate>) {
        let mut h = self.warm_up(data, lo);
        for (i, &b) in data[lo..hi].iter().enumerate() {
            h = (h << 1).wrapping_add(self.gear[b as usize]);
            if h & self.filter == 0 {
                out.push(Candidate {
                    pos: lo + i,
                    hash: h,
                });
            }
        }
    }

    /// The rolling hash just before `at`, from the bytes that can still
    /// matter.
    fn warm_up(&self, data: &[u8], at: usize) -> u64 {
        let from = at.saturating_sub(self.restart_span);
        data[from..at]
            .iter()
            .fold(0u64, |h, &b| (h << 1).wrapping_add(self.gear[b as usize]))
    }

    /// Length of the chunk starting at `start` of `data`, where `data` ends
    /// at the end of the input or at least `max` bytes after `start`.
    /// `cands` holds the candidates of `data` (positions relative to `data`)
    /// from some index on; `next` is advanced past the ones this chunk no
    /// longer needs. Identical to `fastcdc::v2020::cut` on `&data[start..]`.
    pub fn cut(&self, data: &[u8], start: usize, cands: &[Candidate], next: &mut usize) -> usize {
        let remaining = data.len() - start;
        if remaining <= self.min {
            return remaining;
        }
        // fastcdc's bounds: strict mask on [min, center), loose on
        // [center, limit), then `limit` itself; its pairwise loop tests
        // even-aligned pairs, so both ends round down to even.
        let (limit, center) = if remaining > self.max {
            (self.max, self.avg)
        } else if remaining < self.avg {
            (remaining, remaining)
        } else {
            (remaining, self.avg)
        };
        let strict_end = center & !1;
        let loose_end = limit & !1;

        // Restarted hash until it agrees with the rolling one.
        let exact_from = (self.min + self.restart_span).min(loose_end);
        let mut h = 0u64;
        for a in self.min..exact_from {
            h = (h << 1).wrapping_add(self.gear[data[start + a] as usize]);
            let mask = if a < strict_end {
                self.mask_s
            } else {
                self.mask_l
            };
            if h & mask == 0 {
                return a;
            }
        }

        // Candidates from there on, in order.
        let from = start + exact_from;
        while *next < cands.len() && cands[*next].pos < from {
            *next += 1;
        }
        for c in &cands[*next..] {
            let a = c.pos - start;
            if a >= loose_end {
                break;
            }
            let mask = if a < strict_end {
                self.mask_s
            } else {
                self.mask_l
            };
            if c.hash & mask == 0 {
                return a;
            }
        }
        limit
    }
}

/// One step of the gear hash, `(h << 1) + g`. On x86-64 this is a single
/// `lea` with the table entry loaded into a register: LLVM prefers `add h,
/// h` then `add h, [table]`, one more ALU operation per byte in a loop that
/// is bound by them (the `lea` form measured 22% faster on the candidate
/// scan).
#[inline(always)]
fn roll(h: u64, g: u64) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let r: u64;
        // SAFETY: register arithmetic only: no memory, stack or flags.
        unsafe {
            std::arch::asm!(
                "lea {r}, [{g} + 2*{h}]",
                r = lateout(reg) r,
                g = in(reg) g,
                h = in(reg) h,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        r
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        (h << 1).wrapping_add(g)
    }
}

#[cold]
#[inline(never)]
fn push_hit(out: &mut Vec<Candidate>, pos: usize, hash: u64) {
    out.push(Candidate { pos, hash });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fastcdc tests even positions as `(hash << 1) & (mask << 1)` with a
    /// table of `gear << 1`; that equals `hash & mask` only if no mask uses
    /// bit 63.
    #[test]
    fn fastcdc_tables_and_masks_fit_the_search() {
        let (gear, gear_ls) = get_gear_with_seed(0);
        for (g, ls) in gear.iter().zip(gear_ls.iter()) {
            assert_eq!(g << 1, *ls);
        }
        for avg in (256..=4 << 20).step_by(254) {
            let s = GearSearch::new(64, avg, 16 << 20);
            assert!(s.restart_span < 63, "avg {avg}");
        }
    }
}
