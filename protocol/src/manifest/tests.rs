use super::*;
use proptest::prelude::*;

fn file(path: &str, data: &[&[u8]]) -> Entry {
    let chunks: Vec<ChunkRef> = data
        .iter()
        .map(|d| ChunkRef {
            id: ChunkId::of(d),
            len: d.len() as u32,
        })
        .collect();
    Entry {
        path: path.into(),
        kind: EntryKind::File {
            exec: false,
            size: data.iter().map(|d| d.len() as u64).sum(),
            chunks,
        },
    }
}

fn dir(path: &str) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryKind::Dir,
    }
}

fn link(path: &str, target: &str) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryKind::Symlink {
            target: target.into(),
        },
    }
}

fn manifest(entries: Vec<Entry>) -> Manifest {
    Manifest {
        app: "demo".into(),
        version: "1.0.0".into(),
        params: ChunkerParams::default(),
        created_at: 1_700_000_000,
        entries,
        entry_point: None,
    }
}

fn check(entries: Vec<Entry>) -> Result<Manifest, DecodeError> {
    Manifest::decode(&manifest(entries).encode())
}

#[test]
fn round_trip_and_id_stable() {
    let m = manifest(vec![
        dir("bin"),
        file("bin/app", &[b"hello", b"world"]),
        link("bin/app2", "app"),
        file("empty", &[]),
        dir("lib"),
        link("lib/app", "../bin/app"),
    ]);
    let bytes = m.encode();
    assert_eq!(Manifest::decode(&bytes).unwrap(), m);
    assert_eq!(m.encode(), bytes, "encoding is deterministic");
    assert_eq!(m.id(), ManifestId::of(&bytes));
    assert_eq!(m.total_size(), 10);
    assert_eq!(m.unique_chunks().len(), 2);
}

#[test]
fn chunk_list_costs_about_36_bytes_per_chunk() {
    let data: Vec<Vec<u8>> = (0..1000u32).map(|i| i.to_le_bytes().repeat(8192)).collect();
    let refs: Vec<&[u8]> = data.iter().map(|d| &d[..]).collect();
    let m = manifest(vec![file("big", &refs)]);
    let per_chunk = m.encode().len() as f64 / 1000.0;
    assert!(per_chunk < 38.0, "{per_chunk} bytes per chunk");
}

#[test]
fn unsafe_paths_refused() {
    for p in ["../x", "/etc/x", "a/../../x", "C:x", "a\\..\\b"] {
        let err = check(vec![file(p, &[b"x"])]).unwrap_err();
        assert!(err.to_string().contains("path"), "{p}: {err}");
    }
}

#[test]
fn order_duplicates_and_parents() {
    assert!(check(vec![file("b", &[b"x"]), file("a", &[b"x"])]).is_err());
    assert!(check(vec![file("a", &[b"x"]), file("a", &[b"x"])]).is_err());
    // Parent missing, or a file used as a directory.
    assert!(check(vec![file("d/x", &[b"x"])]).is_err());
    assert!(check(vec![file("d", &[b"x"]), file("d/x", &[b"x"])]).is_err());
    // A symlink used as a directory (write through a link).
    assert!(check(vec![link("d", "."), file("d/x", &[b"x"])]).is_err());
}

#[test]
fn sizes_must_add_up() {
    let mut e = file("a", &[b"abc"]);
    if let EntryKind::File { size, .. } = &mut e.kind {
        *size = 4;
    }
    assert!(check(vec![e]).is_err());
}

#[test]
fn symlinks_that_escape_are_refused() {
    let bad = [
        ("l", "/etc/passwd"),
        ("l", ".."),
        ("d/l", "../.."),
        ("d/l", "../../x"),
        ("l", "d/../../x"),
        ("l", "a/./b"),
        ("l", ""),
        ("l", "C:\\x"),
    ];
    for (p, t) in bad {
        let r = check(vec![dir("d"), link(p, t)]);
        assert!(r.is_err(), "{p} -> {t} accepted");
    }
    // A chain of links that is lexically inside but physically outside:
    // d/s -> .. (the root), then l -> d/s/.. would climb above the root.
    assert!(check(vec![dir("d"), link("d/s", ".."), link("l", "d/s/..")]).is_err());
    assert!(check(vec![dir("d"), link("d/s", ".."), link("l", "d/s/x")]).is_err());
    // Fine: sibling, up-then-down, link to a link.
    assert!(check(vec![
        dir("d"),
        link("d/a", "b"),
        link("d/c", "../d/a"),
        link("e", "d")
    ])
    .is_ok());
}

#[test]
fn unknown_fields_and_formats_refused() {
    let mut b = manifest(vec![]).encode();
    b[0] = 0xa7; // claim 7 fields: the decoder runs out of input
    assert!(Manifest::decode(&b).is_err());
    let mut b = manifest(vec![]).encode();
    b.push(0);
    assert!(Manifest::decode(&b).is_err());
}

/// File names the manifest accepts: the regex alone can produce Windows
/// device names such as `prn` or `con.txt`, which validation rejects.
fn arb_name() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9._-]{0,12}".prop_filter("a name the manifest accepts", |n| {
        crate::names::validate_rel_path(n).is_ok()
    })
}

proptest! {
    #[test]
    fn prop_round_trip(
        files in proptest::collection::btree_map(arb_name(), proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..64), 0..5), 0..20),
        exec in any::<bool>(),
        created in any::<u64>(),
    ) {
        let mut entries = Vec::new();
        for (name, chunks) in &files {
            let refs: Vec<&[u8]> = chunks.iter().map(|c| &c[..]).collect();
            let mut e = file(name, &refs);
            if let EntryKind::File { exec: x, .. } = &mut e.kind { *x = exec; }
            entries.push(e);
        }
        let mut m = manifest(entries);
        m.created_at = created;
        let bytes = m.encode();
        prop_assert_eq!(Manifest::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn prop_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Manifest::decode(&bytes);
    }

    /// Flipping any byte of a valid manifest gives an error or a different
    /// manifest, never a panic.
    #[test]
    fn prop_bit_flips(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let m = manifest(vec![dir("a"), file("a/b", &[b"hello"]), link("c", "a/b")]);
        let mut bytes = m.encode();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        if let Ok(m2) = Manifest::decode(&bytes) {
            prop_assert_ne!(m2, m);
        }
    }
}

#[test]
fn non_canonical_integers_refused() {
    // created_at = 5 written as a 9-byte integer instead of one byte.
    let mut m2 = manifest(vec![]);
    m2.created_at = 5;
    let canon = m2.encode();
    assert!(Manifest::decode(&canon).is_ok());
    let needle = [0x04, 0x05]; // key 4, value 5
    let pos = canon.windows(2).position(|w| w == needle).unwrap();
    let mut b = canon[..pos + 1].to_vec();
    b.extend_from_slice(&[0x1b, 0, 0, 0, 0, 0, 0, 0, 5]);
    b.extend_from_slice(&canon[pos + 2..]);
    assert!(Manifest::decode(&b)
        .unwrap_err()
        .to_string()
        .contains("canonical"));
}
