//! Bad input to every endpoint of a real `ferry serve`, over raw HTTP/1.1:
//! malformed CBOR, truncated frames and envelopes, oversized lists and
//! bodies, wrong content types, ids of the wrong length, invalid names,
//! missing and wrong tokens, documents signed by another key. Each gets a
//! 4xx with a one-line plain-text message naming what was wrong; the server
//! keeps serving; nothing is stored (fsck counts and the channel's record
//! are unchanged).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use ferry_protocol::frame::{encode_end, encode_frame, encode_header};
use ferry_protocol::signed::{KIND_CHANNEL, KIND_MANIFEST};
use ferry_protocol::{
    unix_now, ChannelRecord, ChunkId, ChunkRef, ChunkerParams, Codec, Entry, EntryKind, Manifest,
    ManifestId, SecretKey,
};
use support::*;

const CBOR: &str = "application/cbor";
const CHUNKS: &str = "application/x-ferry-chunks";

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// One raw HTTP/1.1 exchange: (status, content type, body).
fn raw(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String, String) {
    let host = url.strip_prefix("http://").unwrap();
    let mut c = TcpStream::connect(host).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    c.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) and close before the whole body is sent.
    for piece in body.chunks(1 << 20) {
        if c.write_all(piece).is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let ct = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, ct, body.to_string())
}

#[derive(Clone, Copy)]
enum Tok {
    Anon,
    Wrong,
    Right,
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    token: Tok,
    ct: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    /// Words the message must contain.
    says: &'static [&'static str],
}

/// One row of the table (positional, so the table reads as one line each).
#[allow(clippy::too_many_arguments)]
fn case(
    name: &'static str,
    method: &'static str,
    path: impl Into<String>,
    token: Tok,
    ct: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    says: &'static [&'static str],
) -> Case {
    Case {
        name,
        method,
        path: path.into(),
        token,
        ct,
        body,
        status,
        says,
    }
}

fn frame_stream(frames: &[(ChunkId, Codec, u32, &[u8])], end: bool) -> Vec<u8> {
    let mut out = Vec::new();
    encode_header(&mut out);
    for (id, codec, raw, payload) in frames {
        encode_frame(&mut out, id, *codec, *raw, payload);
    }
    if end {
        encode_end(&mut out);
    }
    out
}

/// A CBOR map {0: bytes(n)} by hand: an id list of `n / 32` ids.
fn id_list(n_bytes: usize) -> Vec<u8> {
    let mut out = vec![0xA1, 0x00];
    match n_bytes {
        0..=23 => out.push(0x40 | n_bytes as u8),
        24..=255 => out.extend([0x58, n_bytes as u8]),
        256..=65535 => {
            out.push(0x59);
            out.extend((n_bytes as u16).to_be_bytes());
        }
        _ => {
            out.push(0x5A);
            out.extend((n_bytes as u32).to_be_bytes());
        }
    }
    out.extend(std::iter::repeat_n(7u8, n_bytes));
    out
}

#[test]
fn every_endpoint_refuses_bad_input_with_a_clear_4xx_and_stores_nothing() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let server = Server::start(&data);
    let key = keygen(t.path(), "k");
    make_v1(&t.path().join("v1"));
    ferry_ok(&push_args(
        &s(&t.path().join("v1")),
        &server.url,
        "1.0.0",
        &s(&key.path),
    ));
    let url = server.url.clone();
    let channel_before = raw(&url, "GET", "/v1/apps/demo/channels/stable", &[], b"");
    assert_eq!(channel_before.0, 200);
    let fsck = |what: &str| {
        let out = ferry_ok(&["fsck", "--data", &s(&data), "--json"]);
        let mut v = json(&out);
        assert_eq!(v["clean"], true, "{what}: {v}");
        v.as_object_mut().unwrap().retain(|k, _| k != "elapsed_ms");
        v
    };
    let stored_before = fsck("before");

    // Genuine documents to break.
    let publisher = SecretKey::from_text(&std::fs::read_to_string(&key.path).unwrap()).unwrap();
    let stranger = SecretKey::from_seed([99; 32]);
    let data_bytes = b"some new chunk bytes".to_vec();
    let new_id = ChunkId::of(&data_bytes);
    let m = Manifest {
        app: "demo".into(),
        version: "9.0.0".into(),
        params: ChunkerParams::default(),
        created_at: 1,
        entries: vec![Entry {
            path: "a.txt".into(),
            kind: EntryKind::File {
                exec: false,
                size: data_bytes.len() as u64,
                chunks: vec![ChunkRef {
                    id: new_id,
                    len: data_bytes.len() as u32,
                }],
            },
        }],
        entry_point: None,
    };
    let m_body = m.encode();
    let m_id = ManifestId::of(&m_body);
    let manifest_env = publisher.sign(KIND_MANIFEST, m_body.clone()).encode();
    let stranger_manifest = stranger.sign(KIND_MANIFEST, m_body).encode();
    let rec = ChannelRecord {
        app: "demo".into(),
        channel: "stable".into(),
        sequence: 99,
        version: "1.0.0".into(),
        manifest_id: m_id,
        issued_at: unix_now(),
        expires_at: None,
        policy: Default::default(),
        keys: Vec::new(),
    };
    let stranger_record = stranger.sign(KIND_CHANNEL, rec.encode()).encode();
    let other_app_record = publisher
        .sign(
            KIND_CHANNEL,
            ChannelRecord {
                app: "other".into(),
                ..rec.clone()
            }
            .encode(),
        )
        .encode();
    let half = |v: &[u8]| v[..v.len() / 2].to_vec();
    let big = |n: usize| vec![0xA0u8; n];
    let zero_id = "0".repeat(64);
    let good = frame_stream(
        &[(new_id, Codec::Raw, data_bytes.len() as u32, &data_bytes)],
        true,
    );
    let liar = frame_stream(&[(new_id, Codec::Raw, 20, b"not the bytes, sorry")], true);
    let huge_raw = {
        let mut v = Vec::new();
        encode_header(&mut v);
        v.extend_from_slice(&new_id.0);
        v.push(0);
        v.extend_from_slice(&(32u32 << 20).to_le_bytes());
        v.extend_from_slice(&(32u32 << 20).to_le_bytes());
        v
    };
    let use_cbor = Some(CBOR);
    let use_chunks = Some(CHUNKS);
    use Tok::*;
    let cases = vec![
        // Routing.
        case(
            "unknown endpoint",
            "GET",
            "/v1/nothing",
            Anon,
            None,
            vec![],
            404,
            &["no such endpoint"],
        ),
        case(
            "wrong method",
            "DELETE",
            "/v1/manifests",
            Anon,
            None,
            vec![],
            405,
            &["not allowed"],
        ),
        // Names.
        case(
            "app name with a dot first",
            "GET",
            "/v1/apps/.hidden/channels/stable",
            Anon,
            None,
            vec![],
            400,
            &["name"],
        ),
        case(
            "app name too long",
            "GET",
            format!("/v1/apps/{}/channels/stable", "a".repeat(65)),
            Anon,
            None,
            vec![],
            400,
            &["name"],
        ),
        case(
            "channel name escaped dots",
            "GET",
            "/v1/apps/demo/channels/%2e%2e",
            Anon,
            None,
            vec![],
            400,
            &["name"],
        ),
        case(
            "invalid version",
            "GET",
            "/v1/apps/demo/versions/-1",
            Anon,
            None,
            vec![],
            400,
            &["version"],
        ),
        case(
            "invalid app in versions",
            "GET",
            "/v1/apps/a$b/versions",
            Anon,
            None,
            vec![],
            400,
            &["name"],
        ),
        case(
            "invalid app in status",
            "GET",
            "/v1/apps/a%00b/status",
            Anon,
            None,
            vec![],
            400,
            &["name"],
        ),
        case(
            "invalid app in reports",
            "POST",
            "/v1/apps/-x/reports",
            Anon,
            use_cbor,
            vec![0xA0],
            400,
            &["name"],
        ),
        case(
            "history limit 0",
            "GET",
            "/v1/apps/demo/channels/stable/history?limit=0",
            Anon,
            None,
            vec![],
            400,
            &["limit"],
        ),
        case(
            "history unknown parameter",
            "GET",
            "/v1/apps/demo/channels/stable/history?evil=1",
            Anon,
            None,
            vec![],
            400,
            &["unknown query parameter"],
        ),
        // Ids.
        case(
            "manifest id too short",
            "GET",
            "/v1/manifests/abc",
            Anon,
            None,
            vec![],
            400,
            &["manifest id"],
        ),
        case(
            "manifest id not hex",
            "GET",
            format!("/v1/manifests/{}", "z".repeat(64)),
            Anon,
            None,
            vec![],
            400,
            &["manifest id"],
        ),
        case(
            "manifest id too long",
            "GET",
            format!("/v1/manifests/{}", "0".repeat(66)),
            Anon,
            None,
            vec![],
            400,
            &["manifest id"],
        ),
        case(
            "manifest base bad",
            "GET",
            format!("/v1/manifests/{zero_id}?base=xyz"),
            Anon,
            None,
            vec![],
            400,
            &["base"],
        ),
        case(
            "manifest unknown query",
            "GET",
            format!("/v1/manifests/{zero_id}?x=1"),
            Anon,
            None,
            vec![],
            400,
            &["query"],
        ),
        case(
            "chunk id too short",
            "GET",
            "/v1/chunks/0123",
            Anon,
            None,
            vec![],
            400,
            &["chunk id"],
        ),
        case(
            "chunk id not hex",
            "GET",
            format!("/v1/chunks/{}", "g".repeat(64)),
            Anon,
            None,
            vec![],
            400,
            &["chunk id"],
        ),
        // Fetch (open to all).
        case(
            "fetch wrong content type",
            "POST",
            "/v1/chunks/fetch",
            Anon,
            Some("text/plain"),
            id_list(32),
            415,
            &["Content-Type"],
        ),
        case(
            "fetch malformed CBOR",
            "POST",
            "/v1/chunks/fetch",
            Anon,
            use_cbor,
            vec![0xFF, 0x00, 0x13],
            400,
            &["fetch request"],
        ),
        case(
            "fetch empty body",
            "POST",
            "/v1/chunks/fetch",
            Anon,
            use_cbor,
            vec![],
            400,
            &["fetch request"],
        ),
        case(
            "fetch ids of a wrong length",
            "POST",
            "/v1/chunks/fetch",
            Anon,
            use_cbor,
            id_list(33),
            400,
            &["32"],
        ),
        case(
            "fetch too many ids",
            "POST",
            "/v1/chunks/fetch",
            Anon,
            use_cbor,
            id_list(65_537 * 32),
            400,
            &["at most 65536"],
        ),
        case(
            "fetch truncated CBOR",
            "POST",
            "/v1/chunks/fetch",
            Anon,
            use_cbor,
            half(&id_list(64)),
            400,
            &["fetch request"],
        ),
        // Missing (token).
        case(
            "missing without token",
            "POST",
            "/v1/chunks/missing",
            Anon,
            use_cbor,
            id_list(32),
            401,
            &["token"],
        ),
        case(
            "missing with wrong token",
            "POST",
            "/v1/chunks/missing",
            Wrong,
            use_cbor,
            id_list(32),
            401,
            &["wrong push token"],
        ),
        case(
            "missing malformed",
            "POST",
            "/v1/chunks/missing",
            Right,
            use_cbor,
            vec![0x82, 0x01],
            400,
            &["id list"],
        ),
        case(
            "missing ids of a wrong length",
            "POST",
            "/v1/chunks/missing",
            Right,
            use_cbor,
            id_list(31),
            400,
            &["32"],
        ),
        case(
            "missing too many ids",
            "POST",
            "/v1/chunks/missing",
            Right,
            use_cbor,
            id_list(65_537 * 32),
            400,
            &["at most 65536"],
        ),
        // Upload.
        case(
            "upload without token",
            "POST",
            "/v1/chunks",
            Anon,
            use_chunks,
            good.clone(),
            401,
            &["token"],
        ),
        case(
            "upload with wrong token",
            "POST",
            "/v1/chunks",
            Wrong,
            use_chunks,
            good.clone(),
            401,
            &["wrong push token"],
        ),
        case(
            "upload wrong content type",
            "POST",
            "/v1/chunks",
            Right,
            use_cbor,
            good.clone(),
            415,
            &["Content-Type"],
        ),
        case(
            "upload bad magic",
            "POST",
            "/v1/chunks",
            Right,
            use_chunks,
            b"NOPE\x01\0\0\0".to_vec(),
            400,
            &["chunk stream"],
        ),
        case(
            "upload truncated frame",
            "POST",
            "/v1/chunks",
            Right,
            use_chunks,
            good[..good.len() - 45].to_vec(),
            400,
            &["chunk stream"],
        ),
        case(
            "upload without end frame",
            "POST",
            "/v1/chunks",
            Right,
            use_chunks,
            frame_stream(&[(new_id, Codec::Raw, 20, &data_bytes)], false),
            400,
            &["chunk stream"],
        ),
        case(
            "upload chunk over 16 MiB",
            "POST",
            "/v1/chunks",
            Right,
            use_chunks,
            huge_raw,
            400,
            &["chunk stream"],
        ),
        case(
            "upload bytes that do not hash to the id",
            "POST",
            "/v1/chunks",
            Right,
            use_chunks,
            liar,
            422,
            &["hash"],
        ),
        case(
            "upload over 64 MiB",
            "POST",
            "/v1/chunks",
            Right,
            use_chunks,
            big(65 << 20),
            413,
            &["limit"],
        ),
        // Manifest publish.
        case(
            "manifest without token",
            "PUT",
            "/v1/manifests",
            Anon,
            use_cbor,
            manifest_env.clone(),
            401,
            &["token"],
        ),
        case(
            "manifest wrong token",
            "PUT",
            "/v1/manifests",
            Wrong,
            use_cbor,
            manifest_env.clone(),
            401,
            &["wrong push token"],
        ),
        case(
            "manifest wrong content type",
            "PUT",
            "/v1/manifests",
            Right,
            Some("application/json"),
            manifest_env.clone(),
            415,
            &["Content-Type"],
        ),
        case(
            "manifest malformed CBOR",
            "PUT",
            "/v1/manifests",
            Right,
            use_cbor,
            b"{\"json\": true}".to_vec(),
            400,
            &["envelope"],
        ),
        case(
            "manifest truncated",
            "PUT",
            "/v1/manifests",
            Right,
            use_cbor,
            half(&manifest_env),
            400,
            &["envelope"],
        ),
        case(
            "manifest signed by a stranger",
            "PUT",
            "/v1/manifests",
            Right,
            use_cbor,
            stranger_manifest,
            403,
            &["not signed by any trusted key"],
        ),
        case(
            "manifest whose chunks are missing",
            "PUT",
            "/v1/manifests",
            Right,
            use_cbor,
            manifest_env.clone(),
            422,
            &["not on the server"],
        ),
        case(
            "record as manifest",
            "PUT",
            "/v1/manifests",
            Right,
            use_cbor,
            other_app_record.clone(),
            400,
            &["expected a signed manifest"],
        ),
        case(
            "manifest over 128 MiB",
            "PUT",
            "/v1/manifests",
            Right,
            use_cbor,
            big((128 << 20) + 8192),
            413,
            &["limit"],
        ),
        // Channel publish.
        case(
            "record without token",
            "PUT",
            "/v1/apps/demo/channels/stable",
            Anon,
            use_cbor,
            stranger_record.clone(),
            401,
            &["token"],
        ),
        case(
            "record wrong token",
            "PUT",
            "/v1/apps/demo/channels/stable",
            Wrong,
            use_cbor,
            stranger_record.clone(),
            401,
            &["wrong push token"],
        ),
        case(
            "record wrong content type",
            "PUT",
            "/v1/apps/demo/channels/stable",
            Right,
            Some("text/plain"),
            stranger_record.clone(),
            415,
            &["Content-Type"],
        ),
        case(
            "record malformed",
            "PUT",
            "/v1/apps/demo/channels/stable",
            Right,
            use_cbor,
            vec![0xA1, 0x00],
            400,
            &["envelope"],
        ),
        case(
            "record truncated",
            "PUT",
            "/v1/apps/demo/channels/stable",
            Right,
            use_cbor,
            half(&stranger_record),
            400,
            &["envelope"],
        ),
        case(
            "record signed by a stranger",
            "PUT",
            "/v1/apps/demo/channels/stable",
            Right,
            use_cbor,
            stranger_record.clone(),
            403,
            &["not signed by any trusted key"],
        ),
        case(
            "record of another app than the path",
            "PUT",
            "/v1/apps/demo/channels/stable",
            Right,
            use_cbor,
            other_app_record,
            400,
            &["other"],
        ),
        case(
            "record manifest as record",
            "PUT",
            "/v1/apps/demo/channels/stable",
            Right,
            use_cbor,
            manifest_env,
            400,
            &["expected a signed channel record"],
        ),
        case(
            "record over 64 KiB",
            "PUT",
            "/v1/apps/demo/channels/stable",
            Right,
            use_cbor,
            big(80 << 10),
            413,
            &["limit"],
        ),
        case(
            "record invalid channel name",
            "PUT",
            "/v1/apps/demo/channels/bad%20name",
            Right,
            use_cbor,
            vec![0xA0],
            400,
            &["name"],
        ),
        // Reports (open to all).
        case(
            "report wrong content type",
            "POST",
            "/v1/apps/demo/reports",
            Anon,
            Some("text/plain"),
            vec![0xA0],
            415,
            &["Content-Type"],
        ),
        case(
            "report malformed",
            "POST",
            "/v1/apps/demo/reports",
            Anon,
            use_cbor,
            vec![0xA0],
            400,
            &["report"],
        ),
        case(
            "report truncated",
            "POST",
            "/v1/apps/demo/reports",
            Anon,
            use_cbor,
            vec![0xA5, 0x00],
            400,
            &["report"],
        ),
        case(
            "report over 2 KiB",
            "POST",
            "/v1/apps/demo/reports",
            Anon,
            use_cbor,
            big(4096),
            413,
            &["limit"],
        ),
    ];
    let mut failures = Vec::new();
    for c in &cases {
        let mut headers = Vec::new();
        match c.token {
            Tok::Anon => {}
            Tok::Wrong => headers.push(("Authorization", "Bearer not-the-token".to_string())),
            Tok::Right => headers.push(("Authorization", format!("Bearer {TOKEN}"))),
        }
        if let Some(ct) = c.ct {
            headers.push(("Content-Type", ct.to_string()));
        }
        let (status, ct, body) = raw(&url, c.method, &c.path, &headers, &c.body);
        let msg = body.trim();
        let ok = status == c.status
            && ct.starts_with("text/plain")
            && !msg.is_empty()
            && !msg.contains('\n')
            && c.says
                .iter()
                .all(|w| msg.to_lowercase().contains(&w.to_lowercase()));
        if !ok {
            failures.push(format!(
                "{}: {} {} -> {status} {msg:?} (want {} with {:?})",
                c.name, c.method, c.path, c.status, c.says
            ));
        }
        // Still serving.
        let (h, _, _) = raw(&url, "GET", "/v1/health", &[], b"");
        assert_eq!(h, 200, "{}: the server stopped answering", c.name);
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Nothing stored: same counts, same record; the server still serves a
    // client the published version.
    assert_eq!(fsck("after"), stored_before);
    let channel_after = raw(&url, "GET", "/v1/apps/demo/channels/stable", &[], b"");
    assert_eq!(channel_after, channel_before);
    let inst = t.path().join("i");
    ferry_ok(&sync_args(&url, &s(&inst), &key.public));
    assert_same_tree(&t.path().join("v1"), &inst.join("current"));
}
