//! Which requested chunks travel together in a group frame, and which bytes
//! of the client's current version each group is compressed against.
//!
//! Pure: a server runs it over manifests and request ids, then reads the
//! bytes from its store; `ferry tune` runs it over folders. Both sides of a
//! transfer need not agree on the plan: the group frame names its
//! reference explicitly, so the choice here is server policy, free to
//! improve without changing clients.
//!
//! - A *run* is a sequence of requested ids that are consecutive chunks of
//!   one file of the `want` manifest. Runs are cut on a grid of
//!   [`PlanParams::unit`] bytes of file offset, so that clients asking for
//!   the same transition get the same groups (and a server cache hits).
//! - The *old file* of a new file is the file at the same path in `have`,
//!   else one whose path matches once every name token containing a digit
//!   is blanked (`libarrow.so.1700` -> `libarrow.so.1800`,
//!   `numpy-2.1.2.dist-info/RECORD` -> `numpy-2.1.3.dist-info/RECORD`),
//!   the closest in size when several do.
//! - The *reference* is a window of the old file around the place the run
//!   came from: found exactly through a nearby chunk both files share
//!   (an *anchor*: text edits leave most chunks intact), else at the same
//!   relative position (rebuilt binaries keep their layout roughly). A
//!   pinned window can be narrow; a proportional guess needs slack.

use std::collections::{HashMap, HashSet};

use crate::group::{RefRange, MAX_GROUP_RAW, MAX_REF_LEN};
use crate::hash::ChunkId;
use crate::manifest::{EntryKind, Manifest};

/// Tunables of the plan (server policy; `ferry tune` varies them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanParams {
    /// Grid on which runs are cut, in bytes of file offset.
    pub unit: u64,
    /// Reference bytes before and after a run placed through an anchor
    /// (at least the run's own length is added on each side).
    pub anchored_margin: u64,
    /// Reference bytes before and after a run placed by relative position.
    pub proportional_before: u64,
    pub proportional_after: u64,
    /// How many chunks to look at on each side of a run for an anchor.
    pub anchor_reach: usize,
    /// Compress against the old version at all (off: groups only share
    /// compression context; for measuring what references add).
    pub references: bool,
}

impl Default for PlanParams {
    fn default() -> Self {
        PlanParams {
            unit: crate::group::GROUP_CELL,
            anchored_margin: 64 << 10,
            proportional_before: 1 << 20,
            proportional_after: 2 << 20,
            anchor_reach: 16,
            references: true,
        }
    }
}

/// One unit of a fetch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// The requested id at this index, as a single frame.
    Single(usize),
    Group(GroupSpec),
}

/// A run of requested chunks to send as one group frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupSpec {
    /// Index of the first chunk in the request.
    pub first: usize,
    pub count: u32,
    /// Entry index in `want` and index of the first chunk in that file.
    pub file: u32,
    pub chunk: u32,
    /// Total uncompressed length.
    pub raw_len: u32,
    pub reference: Option<RefRange>,
}

/// A file of a manifest with its chunk offsets.
struct FileView {
    entry: u32,
    size: u64,
    /// Start offset of each chunk, plus the size at the end.
    offsets: Vec<u64>,
    ids: Vec<ChunkId>,
}

impl FileView {
    fn all(m: &Manifest) -> Vec<Option<FileView>> {
        m.entries
            .iter()
            .enumerate()
            .map(|(i, e)| match &e.kind {
                EntryKind::File { size, chunks, .. } => {
                    let mut offsets = Vec::with_capacity(chunks.len() + 1);
                    let mut off = 0u64;
                    for c in chunks {
                        offsets.push(off);
                        off += u64::from(c.len);
                    }
                    offsets.push(off);
                    Some(FileView {
                        entry: i as u32,
                        size: *size,
                        offsets,
                        ids: chunks.iter().map(|c| c.id).collect(),
                    })
                }
                _ => None,
            })
            .collect()
    }
}

/// Indexes of a (want, have) transition, built once and reused for every
/// request of it.
pub struct Transition {
    params: PlanParams,
    want: Vec<Option<FileView>>,
    have: Vec<Option<FileView>>,
    /// First position (entry, chunk) of each chunk in `want`.
    want_pos: HashMap<ChunkId, (u32, u32)>,
    /// Old file (entry index in `have`) of each file of `want`.
    old_file: HashMap<u32, u32>,
    /// Offsets of each chunk in each old file that has it (first offset).
    have_pos: HashMap<(ChunkId, u32), u64>,
    /// Every chunk of `have`.
    have_ids: HashSet<ChunkId>,
}

/// A path with every name token that contains a digit blanked: what stays
/// the same when a file is renamed for a new version.
pub fn normalized_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        if token.bytes().any(|b| b.is_ascii_digit()) {
            out.push('#');
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    for ch in path.chars() {
        if ch.is_alphanumeric() {
            token.push(ch);
        } else {
            flush(&mut token, &mut out);
            out.push(ch);
        }
    }
    flush(&mut token, &mut out);
    out
}

impl Transition {
    pub fn new(want: &Manifest, have: Option<&Manifest>, params: PlanParams) -> Transition {
        let want_files = FileView::all(want);
        let have_files = have.map(FileView::all).unwrap_or_default();
        let mut want_pos = HashMap::new();
        for f in want_files.iter().flatten() {
            for (c, id) in f.ids.iter().enumerate() {
                want_pos.entry(*id).or_insert((f.entry, c as u32));
            }
        }
        let mut old_file = HashMap::new();
        let mut have_pos = HashMap::new();
        let mut have_ids = HashSet::new();
        if let Some(have) = have {
            let mut by_path: HashMap<&str, u32> = HashMap::new();
            let mut by_norm: HashMap<String, Vec<u32>> = HashMap::new();
            for f in have_files.iter().flatten() {
                let path = have.entries[f.entry as usize].path.as_str();
                by_path.insert(path, f.entry);
                by_norm
                    .entry(normalized_path(path))
                    .or_default()
                    .push(f.entry);
                for (c, id) in f.ids.iter().enumerate() {
                    have_pos.entry((*id, f.entry)).or_insert(f.offsets[c]);
                    have_ids.insert(*id);
                }
            }
            for f in want_files.iter().flatten() {
                let path = want.entries[f.entry as usize].path.as_str();
                let old = by_path.get(path).copied().or_else(|| {
                    let size = |e: &u32| have_files[*e as usize].as_ref().map_or(0, |v| v.size);
                    by_norm
                        .get(&normalized_path(path))?
                        .iter()
                        .min_by_key(|e| size(e).abs_diff(f.size))
                        .copied()
                });
                if let Some(o) =
                    old.filter(|o| have_files[*o as usize].as_ref().is_some_and(|v| v.size > 0))
                {
                    old_file.insert(f.entry, o);
                }
            }
        }
        Transition {
            params,
            want: want_files,
            have: have_files,
            want_pos,
            old_file,
            have_pos,
            have_ids,
        }
    }

    /// What a client that has exactly `have` asks for: every chunk of
    /// `want` that `have` lacks, once, in file order.
    pub fn update_ids(&self) -> Vec<ChunkId> {
        let mut seen = HashSet::new();
        self.want
            .iter()
            .flatten()
            .flat_map(|f| f.ids.iter())
            .filter(|id| !self.have_ids.contains(id) && seen.insert(**id))
            .copied()
            .collect()
    }

    /// Splits a request (ids in the client's order) into single frames and
    /// groups. Ids not in `want` go single (the store answers for them).
    pub fn plan(&self, ids: &[ChunkId]) -> Vec<Item> {
        let mut items = Vec::new();
        let mut i = 0;
        while i < ids.len() {
            let Some(&(entry, chunk)) = self.want_pos.get(&ids[i]) else {
                items.push(Item::Single(i));
                i += 1;
                continue;
            };
            let Some(f) = self.want[entry as usize].as_ref() else {
                items.push(Item::Single(i));
                i += 1;
                continue;
            };
            let cell = f.offsets[chunk as usize] / self.params.unit.max(1);
            let mut count = 1u32;
            let mut raw = f.offsets[chunk as usize + 1] - f.offsets[chunk as usize];
            while i + (count as usize) < ids.len() {
                let c = chunk as usize + count as usize;
                if c >= f.ids.len()
                    || f.ids[c] != ids[i + count as usize]
                    || self.want_pos.get(&f.ids[c]) != Some(&(entry, c as u32))
                    || f.offsets[c] / self.params.unit.max(1) != cell
                {
                    break;
                }
                let len = f.offsets[c + 1] - f.offsets[c];
                if raw + len > u64::from(MAX_GROUP_RAW) {
                    break;
                }
                raw += len;
                count += 1;
            }
            let reference = self.reference(f, chunk as usize, count as usize);
            if count == 1 && reference.is_none() {
                items.push(Item::Single(i));
            } else {
                items.push(Item::Group(GroupSpec {
                    first: i,
                    count,
                    file: entry,
                    chunk,
                    raw_len: raw as u32,
                    reference,
                }));
            }
            i += count as usize;
        }
        items
    }

    /// The window of the old file to compress chunks `first..first+count`
    /// of `f` against.
    fn reference(&self, f: &FileView, first: usize, count: usize) -> Option<RefRange> {
        if !self.params.references {
            return None;
        }
        let old_entry = *self.old_file.get(&f.entry)?;
        let old = self.have[old_entry as usize].as_ref()?;
        let start = f.offsets[first];
        let len = f.offsets[first + count] - start;
        let p = &self.params;
        let anchor = self.anchor(f, first, count, old_entry);
        let (lo, hi) = match anchor {
            Some(pos) => {
                let margin = p.anchored_margin.max(len);
                (pos.saturating_sub(margin), pos.saturating_add(len + margin))
            }
            None => {
                let pos = u64::try_from(
                    u128::from(start) * u128::from(old.size) / u128::from(f.size.max(1)),
                )
                .unwrap_or(old.size);
                (
                    pos.saturating_sub(p.proportional_before.max(len)),
                    pos.saturating_add(len + p.proportional_after.max(len)),
                )
            }
        };
        let hi = hi.min(old.size);
        let lo = lo.min(hi);
        let span = (hi - lo).min(u64::from(MAX_REF_LEN));
        // Keep the part nearest the run when the window had to shrink.
        let lo = if hi - lo > span { hi - span } else { lo };
        (span > 0).then_some(RefRange {
            entry: old.entry,
            offset: lo,
            len: span as u32,
        })
    }

    /// Where chunk `first` of `f` would sit in the old file, from the
    /// nearest chunk on either side that the old file also has.
    fn anchor(&self, f: &FileView, first: usize, count: usize, old: u32) -> Option<u64> {
        let start = f.offsets[first];
        let reach = self.params.anchor_reach;
        for back in 1..=reach.min(first) {
            let c = first - back;
            if let Some(&o) = self.have_pos.get(&(f.ids[c], old)) {
                return Some(o + (start - f.offsets[c]));
            }
        }
        let end = first + count;
        for c in end..(end + reach).min(f.ids.len()) {
            if let Some(&o) = self.have_pos.get(&(f.ids[c], old)) {
                return Some(o.saturating_sub(f.offsets[c] - start));
            }
        }
        None
    }

    /// The chunk ids (with lengths) a group covers, from the `want` file.
    pub fn group_chunks(&self, g: &GroupSpec) -> Vec<(ChunkId, u32)> {
        let Some(f) = self.want.get(g.file as usize).and_then(Option::as_ref) else {
            return Vec::new();
        };
        (g.chunk as usize..g.chunk as usize + g.count as usize)
            .map(|c| (f.ids[c], (f.offsets[c + 1] - f.offsets[c]) as u32))
            .collect()
    }

    /// The old file's chunks overlapping a reference range, as (id, length,
    /// offset in the file), so its bytes can be read from a chunk store.
    pub fn reference_chunks(&self, r: &RefRange) -> Vec<(ChunkId, u32, u64)> {
        let Some(f) = self.have.get(r.entry as usize).and_then(Option::as_ref) else {
            return Vec::new();
        };
        let end = r.offset + u64::from(r.len);
        let from = f
            .offsets
            .partition_point(|&o| o <= r.offset)
            .saturating_sub(1);
        (from..f.ids.len())
            .take_while(|&c| f.offsets[c] < end)
            .map(|c| {
                (
                    f.ids[c],
                    (f.offsets[c + 1] - f.offsets[c]) as u32,
                    f.offsets[c],
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
