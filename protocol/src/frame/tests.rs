use super::*;
use proptest::prelude::*;

fn stream(frames: &[(ChunkId, Codec, u32, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_header(&mut out);
    for (id, codec, raw, payload) in frames {
        encode_frame(&mut out, id, *codec, *raw, payload);
    }
    encode_end(&mut out);
    out
}

fn decode_all(buf: &[u8]) -> Result<Vec<(ChunkId, Vec<u8>)>, FrameError> {
    let mut d = StreamDecoder::new();
    let mut pos = 0;
    let mut out = Vec::new();
    while let Some((frame, used)) = d.next(&buf[pos..])? {
        pos += used;
        match frame {
            Frame::Chunk { id, payload, .. } => out.push((id, payload.to_vec())),
            Frame::Group { first, payload, .. } => out.push((first, payload.to_vec())),
            Frame::Missing { id } => out.push((id, Vec::new())),
            Frame::End => {}
        }
    }
    d.finish(&buf[pos..])?;
    Ok(out)
}

#[test]
fn group_frames_round_trip_and_are_bounded() {
    use crate::group::{GroupHeader, RefRange, MAX_GROUP_RAW};
    let first = ChunkId::of(b"first");
    let header = GroupHeader {
        count: 2,
        reference: Some(RefRange {
            entry: 1,
            offset: 10,
            len: 100,
        }),
    };
    let mut s = Vec::new();
    encode_header(&mut s);
    encode_group(&mut s, &first, 5000, &header, b"zstd-bytes");
    encode_end(&mut s);
    let got = decode_all(&s).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, first);
    let (h, z) = GroupHeader::parse(&got[0].1).unwrap();
    assert_eq!((h, z), (header, &b"zstd-bytes"[..]));
    // Raw length beyond the group limit, and a payload too big for it.
    for (raw, zlen) in [(MAX_GROUP_RAW + 1, 10), (10, 10_000)] {
        let mut s = Vec::new();
        encode_header(&mut s);
        encode_group(&mut s, &first, raw, &header, &vec![0; zlen]);
        encode_end(&mut s);
        assert!(decode_all(&s).is_err(), "raw {raw} payload {zlen}");
    }
}

#[test]
fn empty_stream() {
    assert_eq!(decode_all(&stream(&[])).unwrap(), vec![]);
}

#[test]
fn truncated_stream_is_incomplete_not_invalid() {
    let s = stream(&[(ChunkId::of(b"abc"), Codec::Raw, 3, b"abc".to_vec())]);
    for cut in 0..s.len() {
        let r = decode_all(&s[..cut]);
        assert_eq!(r, Err(FrameError::Truncated), "cut at {cut}");
    }
}

#[test]
fn bad_magic_version_codec() {
    assert_eq!(decode_all(b"XXXX\x01\0\0\0"), Err(FrameError::BadMagic));
    assert_eq!(
        decode_all(b"FRYS\x02\0\0\0"),
        Err(FrameError::BadVersion(2))
    );
    let mut s = stream(&[(ChunkId::of(b"a"), Codec::Raw, 1, b"a".to_vec())]);
    s[8 + 32] = 7;
    assert!(matches!(
        decode_all(&s),
        Err(FrameError::UnknownCodec { codec: 7, .. })
    ));
}

#[test]
fn oversized_and_inconsistent_lengths() {
    let mut s = Vec::new();
    encode_header(&mut s);
    encode_frame_header(&mut s, &ChunkId::of(b"a"), Codec::Raw, MAX_RAW_LEN + 1, 0);
    assert!(matches!(decode_all(&s), Err(FrameError::TooLarge { .. })));
    let mut s = Vec::new();
    encode_header(&mut s);
    encode_frame_header(&mut s, &ChunkId::of(b"a"), Codec::Raw, 10, 11);
    assert!(matches!(decode_all(&s), Err(FrameError::Invalid { .. })));
    let mut s = Vec::new();
    encode_header(&mut s);
    encode_frame_header(&mut s, &ChunkId::of(b"a"), Codec::Zstd, 10, 5000);
    assert!(matches!(decode_all(&s), Err(FrameError::Invalid { .. })));
}

#[test]
fn trailing_data_after_end() {
    let mut s = stream(&[]);
    s.push(1);
    assert_eq!(decode_all(&s), Err(FrameError::TrailingData));
}

#[test]
fn missing_frames() {
    let mut s = Vec::new();
    encode_header(&mut s);
    encode_missing(&mut s, &ChunkId::of(b"x"));
    encode_end(&mut s);
    assert_eq!(decode_all(&s).unwrap(), vec![(ChunkId::of(b"x"), vec![])]);
}

proptest! {
    #[test]
    fn round_trip(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 0..20)) {
        let frames: Vec<_> = chunks
            .iter()
            .map(|c| (ChunkId::of(c), Codec::Raw, c.len() as u32, c.clone()))
            .collect();
        let s = stream(&frames);
        let back = decode_all(&s).unwrap();
        prop_assert_eq!(back.len(), chunks.len());
        for ((id, data), c) in back.iter().zip(&chunks) {
            prop_assert_eq!(*id, ChunkId::of(c));
            prop_assert_eq!(data, c);
        }
    }

    /// Feeding the stream in arbitrary pieces gives the same frames.
    #[test]
    fn split_feeding(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..100), 1..8), step in 1usize..50) {
        let frames: Vec<_> = chunks
            .iter()
            .map(|c| (ChunkId::of(c), Codec::Raw, c.len() as u32, c.clone()))
            .collect();
        let s = stream(&frames);
        let mut d = StreamDecoder::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut got = 0;
        for piece in s.chunks(step) {
            buf.extend_from_slice(piece);
            while let Some((frame, used)) = d.next(&buf).unwrap() {
                if matches!(frame, Frame::Chunk { .. }) { got += 1; }
                buf.drain(..used);
            }
        }
        d.finish(&buf).unwrap();
        prop_assert_eq!(got, chunks.len());
    }

    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_all(&bytes);
        let mut with_header = b"FRYS\x01\0\0\0".to_vec();
        with_header.extend_from_slice(&bytes);
        let _ = decode_all(&with_header);
    }
}
