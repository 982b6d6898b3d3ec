//! End to end, the happy paths: install, update, re-sync, rollback, repair,
//! pushes that upload nothing, pruning of kept versions.

mod support;

use support::*;

struct World {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    server: Server,
    key: Key,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let server = Server::start(&root.join("data"));
    let key = keygen(&root, "publisher.key");
    make_v1(&root.join("v1"));
    make_v2(&root.join("v1"), &root.join("v2"));
    World {
        _tmp: tmp,
        root,
        server,
        key,
    }
}

impl World {
    fn p(&self, rel: &str) -> String {
        self.root.join(rel).display().to_string()
    }

    fn push(&self, dir: &str, version: &str) -> serde_json::Value {
        let d = self.p(dir);
        let k = self.key.path.display().to_string();
        json(&ferry_ok(&push_args(&d, &self.server.url, version, &k)))
    }

    fn sync(&self, install: &str) -> serde_json::Value {
        let i = self.p(install);
        json(&ferry_ok(&sync_args(
            &self.server.url,
            &i,
            &self.key.public,
        )))
    }
}

#[test]
fn install_update_resync_rollback() {
    let w = world();
    let p1 = w.push("v1", "1.0.0");
    assert_eq!(p1["sequence"], 1);
    assert!(p1["chunks_uploaded"].as_u64().unwrap() > 0);

    let s1 = w.sync("inst");
    assert_eq!(s1["updated"], true);
    assert_eq!(s1["version"], "1.0.0");
    assert!(s1["previous_version"].is_null());
    assert_same_tree(&w.root.join("v1"), &w.root.join("inst/current"));

    // The update changes 64 KiB in the middle of a 6 MiB library.
    w.push("v2", "1.1.0");
    let s2 = w.sync("inst");
    assert_eq!(s2["updated"], true);
    assert_eq!(s2["version"], "1.1.0");
    assert_eq!(s2["previous_version"], "1.0.0");
    let down = s2["bytes_downloaded"].as_u64().unwrap();
    assert!(
        down < 600_000,
        "update downloaded {down} bytes for a 64 KiB change"
    );
    assert!(s2["chunks_reused"].as_u64().unwrap() > 50);
    assert!(s2["requests"].as_u64().unwrap() <= 5, "{s2}");
    assert_same_tree(&w.root.join("v2"), &w.root.join("inst/current"));
    assert_same_tree(&w.root.join("v1"), &w.root.join("inst/versions/1.0.0"));

    // Up to date: one small conditional request.
    let s3 = w.sync("inst");
    assert_eq!(s3["updated"], false);
    assert_eq!(s3["requests"], 1);
    assert!(s3["bytes_downloaded"].as_u64().unwrap() < 1024);

    // Rollback needs no server, and the next sync brings the update back
    // (only a version that failed under `ferry run` is held back).
    let rb = json(&ferry_ok(&[
        "rollback",
        "--install",
        &w.p("inst"),
        "--json",
    ]));
    assert_eq!(rb["version"], "1.0.0");
    assert_same_tree(&w.root.join("v1"), &w.root.join("inst/current"));
    assert_same_tree(&w.root.join("v2"), &w.root.join("inst/versions/1.1.0"));
    let s4 = w.sync("inst");
    assert_eq!(s4["updated"], true);
    assert_eq!(s4["version"], "1.1.0");
    assert_eq!(s4["chunks_fetched"], 0);
    assert_same_tree(&w.root.join("v2"), &w.root.join("inst/current"));

    // Nothing left behind in staging or trash.
    for d in ["inst/.ferry/staging", "inst/.ferry/trash"] {
        assert_eq!(
            std::fs::read_dir(w.root.join(d)).unwrap().count(),
            0,
            "{d} not empty"
        );
    }
}

#[test]
fn repair_after_corruption_and_deletion() {
    let w = world();
    w.push("v1", "1.0.0");
    w.sync("inst");
    let cur = w.root.join("inst/current");
    // Corrupt the middle of the library, delete a doc, drop an exec bit.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(cur.join("lib/engine.so"))
            .unwrap();
        f.write_all_at(b"garbage", 3_000_000).unwrap();
    }
    std::fs::remove_file(cur.join("share/doc/page3.txt")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(cur.join("bin/app"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
    }
    let out = ferry(&["verify", "--install", &w.p("inst")]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    for f in ["lib/engine.so", "share/doc/page3.txt", "bin/app"] {
        assert!(text.contains(f), "verify did not report {f}:\n{text}");
    }
    let r = json(&ferry_ok(&[
        "verify",
        "--install",
        &w.p("inst"),
        "--repair",
        "--server",
        &w.server.url,
        "--trust",
        &w.key.public,
        "--json",
    ]));
    assert_eq!(r["clean"], true);
    // Only the damaged chunk and the deleted file travel, not the library.
    assert!(r["bytes_downloaded"].as_u64().unwrap() < 1_000_000, "{r}");
    assert_same_tree(&w.root.join("v1"), &cur);
    ferry_ok(&["verify", "--install", &w.p("inst")]);
}

#[test]
fn push_of_unchanged_folder_uploads_nothing() {
    let w = world();
    w.push("v1", "1.0.0");
    let again = w.push("v1", "1.0.1");
    assert_eq!(again["chunks_uploaded"], 0);
    assert_eq!(again["bytes_uploaded"], 0);
    // The same version again is a no-op, not an error.
    let same = w.push("v1", "1.0.1");
    assert_eq!(same["already_published"], true);
    // But a version is immutable.
    let k = w.key.path.display().to_string();
    let d = w.p("v2");
    let err = ferry_err(&push_args(&d, &w.server.url, "1.0.1", &k));
    assert!(err.contains("immutable"), "{err}");
}

#[test]
fn keep_prunes_old_versions_and_fsck_is_clean() {
    let w = world();
    w.push("v1", "1.0.0");
    w.sync("inst");
    w.push("v2", "1.1.0");
    w.sync("inst");
    let v3 = w.root.join("v3");
    copy_tree(&w.root.join("v2"), &v3);
    write(&v3.join("README.txt"), b"three\n");
    w.push("v3", "1.2.0");
    w.sync("inst");
    let kept: Vec<String> = std::fs::read_dir(w.root.join("inst/versions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kept, vec!["1.1.0".to_string()]);
    let out = ferry_ok(&["fsck", "--data", &w.server.data.display().to_string()]);
    assert!(out.contains("clean"), "{out}");
}

/// A raw HTTP/1.1 GET: (status, lower-cased header block, body).
fn raw_get(url: &str, path: &str, accept: Option<&str>) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..split]).to_lowercase();
    let status = head[9..12].parse().unwrap();
    let mut body = all[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
}

#[test]
fn manifest_is_served_compressed_against_the_clients_base() {
    use ferry_protocol::manifest_delta;
    let w = world();
    let id1 = w.push("v1", "1.0.0")["manifest_id"]
        .as_str()
        .unwrap()
        .to_string();
    let id2 = w.push("v2", "1.1.0")["manifest_id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = &w.server.url;
    let (st, head, plain2) = raw_get(url, &format!("/v1/manifests/{id2}"), None);
    assert_eq!(st, 200);
    assert!(head.contains("content-type: application/cbor"), "{head}");
    let (_, _, plain1) = raw_get(url, &format!("/v1/manifests/{id1}"), None);

    let ct = manifest_delta::CONTENT_TYPE;
    let path = format!("/v1/manifests/{id2}?base={id1}");
    let (st, head, delta) = raw_get(url, &path, Some(ct));
    assert_eq!(st, 200);
    assert!(head.contains(&format!("content-type: {ct}")), "{head}");
    assert!(
        head.contains(&format!("x-ferry-delta-base: {id1}")),
        "{head}"
    );
    assert!(head.contains("vary: accept"), "{head}");
    assert!(
        delta.len() * 4 < plain2.len(),
        "{} vs {}",
        delta.len(),
        plain2.len()
    );
    assert_eq!(
        manifest_delta::decode(&delta, Some(&plain1)).unwrap(),
        plain2
    );

    // Without a base: compressed on its own. With a bad query: 400.
    let (_, head, alone) = raw_get(url, &format!("/v1/manifests/{id2}"), Some(ct));
    assert!(!head.contains("x-ferry-delta-base"), "{head}");
    assert_eq!(manifest_delta::decode(&alone, None).unwrap(), plain2);
    let (st, _, msg) = raw_get(url, &format!("/v1/manifests/{id2}?base=xyz"), Some(ct));
    assert_eq!(st, 400);
    assert!(String::from_utf8_lossy(&msg).contains("base manifest id"));
}

#[test]
fn gc_on_a_stopped_server_keeps_what_clients_need() {
    let w = world();
    w.push("v1", "1.0.0");
    w.push("v2", "1.1.0");
    make_v2(&w.root.join("v1"), &w.root.join("v3"));
    w.push("v3", "1.2.0");
    w.sync("inst");
    let data = w.server.data.clone();
    let World {
        server,
        root,
        key,
        _tmp,
        ..
    } = w;
    // While the server runs, gc refuses to touch its store.
    let d = data.display().to_string();
    let err = ferry_err(&["gc", "--data", &d]);
    assert!(err.contains("is `ferry serve` running"), "{err}");
    server.stop();
    let dry = json(&ferry_ok(&[
        "gc",
        "--data",
        &d,
        "--keep",
        "1",
        "--grace",
        "1s",
        "--dry-run",
        "--json",
    ]));
    assert_eq!(dry["dry_run"], true);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = json(&ferry_ok(&[
        "gc", "--data", &d, "--keep", "1", "--grace", "1s", "--json",
    ]));
    // 1.2.0 is current and 1.1.0 its fallback; 1.0.0 goes, and with it the
    // chunks only it had.
    assert_eq!(r["versions_removed"], serde_json::json!(["demo 1.0.0"]));
    assert!(r["chunks_removed"].as_u64().unwrap() > 0, "{r}");
    let fsck = ferry(&["fsck", "--data", &d]);
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    // The server comes back and a fresh client still installs 1.2.0.
    let server = Server::start(&data);
    let fresh = root.join("fresh").display().to_string();
    let s = json(&ferry_ok(&sync_args(&server.url, &fresh, &key.public)));
    assert_eq!(s["version"], "1.2.0");
    assert_same_tree(&root.join("v3"), &root.join("fresh/current"));
    drop(_tmp);
}

#[test]
fn unchanged_files_are_linked_by_default_when_intact_and_the_rest_copied() {
    use std::os::unix::fs::MetadataExt;
    let w = world();
    w.push("v1", "1.0.0");
    w.sync("inst");
    // A damaged installed file (unchanged between the versions) must not
    // be linked: the new tree gets the right bytes, the old tree keeps its
    // own damaged copy, untouched.
    let damaged = w.root.join("inst/current/share/doc/page3.txt");
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&damaged, &bytes).unwrap();
    w.push("v2", "1.1.0");
    let inst = w.p("inst");
    let s2 = w.sync("inst");
    assert_eq!(s2["version"], "1.1.0", "{s2}");
    assert_same_tree(&w.root.join("v2"), &w.root.join("inst/current"));
    // 12 pages, bin/app, empty.cfg: all unchanged; one page damaged.
    assert_eq!(s2["files_linked"], 13, "{s2}");
    let meta = |rel: &str| std::fs::metadata(w.root.join(rel)).unwrap();
    let (new, old) = (
        meta("inst/current/bin/app"),
        meta("inst/versions/1.0.0/bin/app"),
    );
    assert_eq!((new.ino(), new.nlink()), (old.ino(), 2));
    assert_eq!(new.mode() & 0o777, 0o755);
    let (new, old) = (
        meta("inst/current/share/doc/page3.txt"),
        meta("inst/versions/1.0.0/share/doc/page3.txt"),
    );
    assert_ne!(new.ino(), old.ino());
    assert_eq!(
        std::fs::read(w.root.join("inst/versions/1.0.0/share/doc/page3.txt")).unwrap(),
        bytes
    );
    // Changed files are never links.
    assert_eq!(meta("inst/current/lib/engine.so").nlink(), 1);
    let v = json(&ferry_ok(&["verify", "--install", &inst, "--json"]));
    assert_eq!(v["clean"], true, "{v}");
    // Rolling back swaps the trees; the damaged old copy comes back as it
    // was, the new version is kept whole.
    ferry_ok(&["rollback", "--install", &inst]);
    assert_eq!(
        std::fs::read(w.root.join("inst/current/share/doc/page3.txt")).unwrap(),
        bytes
    );
    assert_same_tree(&w.root.join("v2"), &w.root.join("inst/versions/1.1.0"));
}

#[test]
fn copy_unchanged_and_tree_editing_hooks_give_every_version_its_own_files() {
    use std::os::unix::fs::MetadataExt;
    let w = world();
    w.push("v1", "1.0.0");
    for inst in ["copy", "hooked", "hooked-link"] {
        w.sync(inst);
    }
    w.push("v2", "1.1.0");
    let hook = "post-install=true".to_string();
    let nlink = |inst: &str| {
        std::fs::metadata(w.root.join(inst).join("current/bin/app"))
            .unwrap()
            .nlink()
    };
    for (inst, extra, links) in [
        ("copy", vec!["--copy-unchanged".to_string()], 1),
        // A post-install hook might edit the new tree in place: copies,
        // unless linking is asked for explicitly.
        ("hooked", vec!["--hook".into(), hook.clone()], 1),
        (
            "hooked-link",
            vec!["--hook".into(), hook.clone(), "--link-unchanged".into()],
            2,
        ),
    ] {
        let i = w.p(inst);
        let mut args = sync_args(&w.server.url, &i, &w.key.public);
        args.extend(extra.iter().map(String::as_str));
        let s = json(&ferry_ok(&args));
        assert_eq!(s["version"], "1.1.0", "{inst}: {s}");
        assert_eq!(
            s["files_linked"],
            if links == 2 { 14 } else { 0 },
            "{inst}: {s}"
        );
        assert_eq!(nlink(inst), links, "{inst}");
        assert_same_tree(&w.root.join("v2"), &w.root.join(inst).join("current"));
    }
    let i = w.p("copy");
    let mut both = sync_args(&w.server.url, &i, &w.key.public);
    both.extend(["--link-unchanged", "--copy-unchanged"]);
    let err = ferry_err(&both);
    assert!(err.contains("cannot be used with"), "{err}");
}
