use super::*;
use crate::manifest::{ChunkRef, Entry};
use crate::params::ChunkerParams;

/// A chunk of `len` bytes, distinct per `tag`.
fn chunk(tag: u32, len: u32) -> (ChunkId, u32) {
    (
        ChunkId::of(&[tag.to_le_bytes(), len.to_le_bytes()].concat()),
        len,
    )
}

fn file(path: &str, chunks: &[(ChunkId, u32)]) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryKind::File {
            exec: false,
            size: chunks.iter().map(|c| u64::from(c.1)).sum(),
            chunks: chunks
                .iter()
                .map(|&(id, len)| ChunkRef { id, len })
                .collect(),
        },
    }
}

fn manifest(entries: Vec<Entry>) -> Manifest {
    Manifest {
        app: "demo".into(),
        version: "1".into(),
        params: ChunkerParams::default(),
        created_at: 0,
        entries,
        entry_point: None,
    }
}

fn ids(chunks: &[(ChunkId, u32)]) -> Vec<ChunkId> {
    chunks.iter().map(|c| c.0).collect()
}

#[test]
fn path_normalisation_blanks_version_tokens() {
    assert_eq!(
        normalized_path("pyarrow/libarrow.so.1700"),
        normalized_path("pyarrow/libarrow.so.1800")
    );
    assert_eq!(
        normalized_path("numpy-2.1.2.dist-info/RECORD"),
        normalized_path("numpy-2.1.3.dist-info/RECORD")
    );
    assert_eq!(
        normalized_path("numpy.libs/libscipy_openblas64_-ff651d7f.so"),
        normalized_path("numpy.libs/libscipy_openblas64_-99b71e71.so")
    );
    assert_ne!(normalized_path("a/lib.so"), normalized_path("b/lib.so"));
}

#[test]
fn runs_of_one_file_become_groups_cut_on_the_grid() {
    // 40 chunks of 64 KiB: 2.5 MiB, so three grid cells of 1 MiB.
    let new: Vec<_> = (0..40).map(|i| chunk(i, 64 << 10)).collect();
    let want = manifest(vec![file("big", &new)]);
    let t = Transition::new(&want, None, PlanParams::default());
    let items = t.plan(&ids(&new));
    let counts: Vec<u32> = items
        .iter()
        .map(|it| match it {
            Item::Group(g) => g.count,
            Item::Single(_) => 1,
        })
        .collect();
    assert_eq!(counts, [16, 16, 8]);
    assert!(items
        .iter()
        .all(|it| matches!(it, Item::Group(g) if g.reference.is_none())));
    // A request that starts mid-cell still ends its first group on the grid.
    let items = t.plan(&ids(&new[10..]));
    let Item::Group(g) = &items[0] else { panic!() };
    assert_eq!((g.first, g.chunk, g.count), (0, 10, 6));
}

#[test]
fn a_lone_chunk_without_reference_stays_single_and_gaps_break_runs() {
    let new: Vec<_> = (0..6).map(|i| chunk(i, 1000)).collect();
    let want = manifest(vec![file("a", &new[..3]), file("b", &new[3..])]);
    let t = Transition::new(&want, None, PlanParams::default());
    // a[0], a[2] (gap), b[0], b[1]
    let req = [new[0].0, new[2].0, new[3].0, new[4].0];
    let items = t.plan(&req);
    assert_eq!(items[0], Item::Single(0));
    assert_eq!(items[1], Item::Single(1));
    let Item::Group(g) = &items[2] else {
        panic!("{items:?}")
    };
    assert_eq!((g.first, g.count, g.raw_len), (2, 2, 2000));
    // Unknown ids are single.
    assert_eq!(t.plan(&[chunk(99, 5).0]), vec![Item::Single(0)]);
}

#[test]
fn an_edit_is_pinned_by_the_chunk_before_it() {
    // Old file: 100 chunks of 16 KiB. New: chunk 50 replaced by a longer one.
    let old: Vec<_> = (0..100).map(|i| chunk(i, 16 << 10)).collect();
    let mut new = old.clone();
    new[50] = chunk(1000, 20 << 10);
    let have = manifest(vec![file("app.js", &old)]);
    let want = manifest(vec![file("app.js", &new)]);
    let t = Transition::new(&want, Some(&have), PlanParams::default());
    let items = t.plan(&[new[50].0]);
    let Item::Group(g) = &items[0] else {
        panic!("{items:?}")
    };
    let r = g.reference.expect("a reference");
    assert_eq!(r.entry, 0);
    // The old chunk 50 starts at 50 * 16 KiB; the window is the run's
    // length plus 64 KiB on each side.
    let at = 50u64 * (16 << 10);
    let margin = 64u64 << 10;
    assert_eq!(r.offset, at - margin);
    assert_eq!(u64::from(r.len), (20u64 << 10) + 2 * margin);
    // The reference chunks cover the range.
    let rc = t.reference_chunks(&r);
    assert!(rc[0].2 <= r.offset);
    let last = rc.last().unwrap();
    assert!(last.2 + u64::from(last.1) >= r.offset + u64::from(r.len));
}

#[test]
fn a_renamed_rebuilt_library_is_found_and_placed_proportionally() {
    let old: Vec<_> = (0..64).map(|i| chunk(i, 64 << 10)).collect(); // 4 MiB
    let new: Vec<_> = (100..132).map(|i| chunk(i, 64 << 10)).collect(); // 2 MiB, all new
    let have = manifest(vec![
        file("lib/libx.so.17", &old),
        file("lib/other.so", &old[..2]),
    ]);
    let want = manifest(vec![file("lib/libx.so.18", &new)]);
    let t = Transition::new(&want, Some(&have), PlanParams::default());
    let items = t.plan(&ids(&new));
    assert_eq!(items.len(), 2);
    let Item::Group(second) = &items[1] else {
        panic!()
    };
    let r = second.reference.unwrap();
    assert_eq!(r.entry, 0, "the renamed file, not the other one");
    // New offset 1 MiB of 2 MiB -> old position 2 MiB of 4; window 1 MiB
    // before, the run (1 MiB) and 2 MiB after, clipped to the file.
    assert_eq!(r.offset, 1 << 20);
    assert_eq!(u64::from(r.len), 3 << 20);
}

#[test]
fn references_never_leave_the_old_file_or_exceed_the_limit() {
    let old: Vec<_> = (0..3).map(|i| chunk(i, 1000)).collect();
    let new: Vec<_> = (10..14).map(|i| chunk(i, 3 << 20)).collect(); // 12 MiB
    let have = manifest(vec![file("f", &old)]);
    let want = manifest(vec![file("f", &new)]);
    let t = Transition::new(&want, Some(&have), PlanParams::default());
    for it in t.plan(&ids(&new)) {
        if let Item::Group(g) = it {
            let r = g.reference.unwrap();
            assert!(r.offset + u64::from(r.len) <= 3000);
            assert!(r.len <= MAX_REF_LEN);
            assert!(g.raw_len <= MAX_GROUP_RAW);
        }
    }
}
