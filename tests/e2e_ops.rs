//! End to end, operations: TLS with a generated CA, metrics and probes,
//! the status page, the serve config file, JSON logs, cache headers,
//! backup and restore while serving.

mod support;

use std::path::Path;

use ferry_protocol::report::{Outcome, Report};
use support::*;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A CA and a server certificate for localhost/127.0.0.1 signed by it, as
/// PEM files in `dir`: (ca.pem, cert.pem, key.pem).
fn make_certs(dir: &Path, ca_name: &str) -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let p = |name: &str, text: String| {
        let path = dir.join(format!("{ca_name}-{name}"));
        std::fs::write(&path, text).unwrap();
        s(&path)
    };
    (
        p("ca.pem", ca_cert.pem()),
        p("cert.pem", cert.pem()),
        p("key.pem", key.serialize_pem()),
    )
}

#[test]
fn push_and_sync_over_tls_and_a_wrong_ca_is_refused() {
    let t = tmp();
    let (ca, cert, key_pem) = make_certs(t.path(), "ferry-test");
    let (other_ca, _, _) = make_certs(t.path(), "someone-else");
    let server = Server::start_with(
        &t.path().join("data"),
        &["--tls-cert", &cert, "--tls-key", &key_pem],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let key = keygen(t.path(), "k");
    make_v1(&t.path().join("v1"));
    let (v1, key_path) = (s(&t.path().join("v1")), s(&key.path));
    let mut push = push_args(&v1, &server.url, "1.0.0", &key_path);
    push.extend(["--ca", &ca]);
    ferry_ok(&push);

    let install = t.path().join("inst");
    let install_s = s(&install);
    let mut sync = sync_args(&server.url, &install_s, &key.public);
    sync.extend(["--ca", &ca]);
    let out = json(&ferry_ok(&sync));
    assert_eq!(out["version"], "1.0.0");
    assert_same_tree(&t.path().join("v1"), &install.join("current"));

    // A certificate from another CA: refused, and the message says why.
    let i2 = s(&t.path().join("i2"));
    let mut sync = sync_args(&server.url, &i2, &key.public);
    sync.extend(["--ca", &other_ca]);
    let err = ferry_err(&sync);
    assert!(
        err.contains("invalid peer certificate") && err.contains("--ca"),
        "{err}"
    );
    // Without --ca the system roots do not know the test CA either.
    let err = ferry_err(&sync_args(
        &server.url,
        &s(&t.path().join("i3")),
        &key.public,
    ));
    assert!(err.contains("not trusted"), "{err}");
    // A CA file that is not one: a clear usage error.
    let i4 = s(&t.path().join("i4"));
    let mut sync = sync_args(&server.url, &i4, &key.public);
    sync.extend(["--ca", &key_pem]);
    let err = ferry_err(&sync);
    assert!(err.contains("--ca") && err.contains("PEM"), "{err}");

    // HTTP/2 is negotiated by ALPN (checked with curl where it exists).
    if let Ok(out) = std::process::Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version}",
            "--cacert",
            &ca,
        ])
        .arg(format!("{}/healthz", server.url))
        .output()
    {
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout), "2");
        }
    }
}

#[test]
fn broken_tls_files_are_named() {
    let t = tmp();
    let (_, cert, _) = make_certs(t.path(), "a");
    let (_, _, other_key) = make_certs(t.path(), "b");
    let d = s(&t.path().join("data"));
    let err = ferry_err(&[
        "serve",
        "--data",
        &d,
        "--tls-cert",
        &cert,
        "--tls-key",
        &cert,
    ]);
    assert!(err.contains("--tls-key"), "{err}");
    let err = ferry_err(&[
        "serve",
        "--data",
        &d,
        "--tls-cert",
        &cert,
        "--tls-key",
        &other_key,
    ]);
    assert!(err.contains("--tls-cert"), "{err}");
}

fn post_report(url: &str, version: &str, outcome: Outcome, client: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = ferry_client::Http::new(url, Default::default()).unwrap();
    let r = Report {
        client_id: client.to_string(),
        channel: "stable".into(),
        version: Some(version.into()),
        outcome,
        error: None,
        subject: None,
    };
    rt.block_on(http.post_report("demo", &r)).unwrap();
}

#[test]
fn metrics_probes_status_page_and_cache_headers() {
    let t = tmp();
    let server = Server::start(&t.path().join("data"));
    assert_eq!(http_get(&server.url, "/healthz", &[]).status, 200);
    let ready = http_get(&server.url, "/readyz", &[]);
    assert_eq!((ready.status, ready.text().trim()), (200, "ready"));

    let key = keygen(t.path(), "k");
    make_v1(&t.path().join("v1"));
    ferry_ok(&push_args(
        &s(&t.path().join("v1")),
        &server.url,
        "1.0.0",
        &s(&key.path),
    ));
    ferry_ok(&sync_args(
        &server.url,
        &s(&t.path().join("i")),
        &key.public,
    ));
    post_report(&server.url, "1.0.0", Outcome::Ok, "client-aaaaaaaa");
    post_report(&server.url, "1.0.0", Outcome::Failed, "client-bbbbbbbb");
    post_report(&server.url, "9.9.9-made-up", Outcome::Ok, "client-cccccccc");

    let m = http_get(&server.url, "/metrics", &[]);
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().contains("openmetrics"));
    let text = m.text();
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(value("ferry_chunks_stored_total") > 10.0);
    assert!(value("ferry_chunks_served_total") > 10.0);
    assert!(value("ferry_store_chunks") > 10.0);
    assert!(value("ferry_store_size_bytes") > 1e6);
    assert!(value("ferry_fetch_batch_chunks_count") >= 1.0);
    assert!(value("ferry_upload_batch_chunks_count") >= 1.0);
    assert!(value("ferry_connections_active") >= 1.0);
    assert_eq!(value("ferry_requests_shed_total"), 0.0);
    assert_eq!(
        value("ferry_http_requests_total{route=\"PUT /v1/manifests\",status=\"201\"}"),
        1.0
    );
    assert!(value("ferry_http_response_body_bytes_total{route=\"POST /v1/chunks/fetch\"}") > 1e6);
    assert!(value("ferry_http_request_body_bytes_total{route=\"POST /v1/chunks\"}") > 1e6);
    assert_eq!(
        value("ferry_client_reports_total{app=\"demo\",version=\"1.0.0\",outcome=\"failed\"}"),
        1.0
    );
    // A version nobody published does not become a label.
    assert!(!text.contains("made-up"), "{text}");
    assert_eq!(
        value("ferry_client_reports_total{app=\"unknown\",version=\"unknown\",outcome=\"ok\"}"),
        1.0
    );

    let ui = http_get(&server.url, "/ui", &[]);
    assert_eq!(ui.status, 200);
    assert!(ui.header("content-type").unwrap().starts_with("text/html"));
    assert!(ui
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));
    let page = ui.text();
    for want in [
        "<h2>demo</h2>",
        "<td>stable</td><td>1.0.0</td>",
        "100% of clients",
        // The sync's own report and two posted ones on stable 1.0.0 (one
        // failed); one on the made-up version.
        "<td>stable</td><td>1.0.0</td><td class=\"n\">3</td><td class=\"n\">2</td>",
        "<td class=\"n bad\">1</td>",
        "9.9.9-made-up",
        "chunks,",
    ] {
        assert!(page.contains(want), "missing {want:?} in\n{page}");
    }

    // Cache headers: records briefly, content forever.
    let rec = http_get(&server.url, "/v1/apps/demo/channels/stable", &[]);
    assert_eq!(rec.header("cache-control"), Some("public, max-age=10"));
    let etag = rec.header("etag").unwrap().to_string();
    let again = http_get(
        &server.url,
        "/v1/apps/demo/channels/stable",
        &[("if-none-match", &etag)],
    );
    assert_eq!(again.status, 304);
    let version = http_get(&server.url, "/v1/apps/demo/versions/1.0.0", &[]);
    assert!(version
        .header("cache-control")
        .unwrap()
        .contains("immutable"));
    let id = version.header("x-ferry-manifest-id").unwrap().to_string();
    let manifest = http_get(&server.url, &format!("/v1/manifests/{id}"), &[]);
    assert!(manifest
        .header("cache-control")
        .unwrap()
        .contains("immutable"));
    assert_eq!(manifest.header("etag"), Some(format!("\"{id}\"").as_str()));
    let chunk_id = first_chunk_id(&manifest.body);
    let chunk = http_get(&server.url, &format!("/v1/chunks/{chunk_id}"), &[]);
    assert_eq!(chunk.status, 200);
    assert_eq!(
        chunk.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let etag = format!("\"{chunk_id}\"");
    assert_eq!(chunk.header("etag"), Some(etag.as_str()));
    let again = http_get(
        &server.url,
        &format!("/v1/chunks/{chunk_id}"),
        &[("if-none-match", &etag)],
    );
    assert_eq!((again.status, again.body.len()), (304, 0));
}

/// The id of the first chunk of a signed manifest envelope.
fn first_chunk_id(envelope: &[u8]) -> String {
    let env = ferry_protocol::Envelope::decode(envelope, usize::MAX).unwrap();
    let m = ferry_protocol::Manifest::decode(&env.body).unwrap();
    m.unique_chunks()[0].id.to_hex()
}

#[test]
fn serve_from_a_config_file_with_the_token_from_the_environment_and_json_logs() {
    let t = tmp();
    let cfg = t.path().join("ferry.toml");
    std::fs::write(
        &cfg,
        "data = \"store\"\nlisten = \"127.0.0.1:0\"\nmax-requests = 64\nlog-format = \"json\"\n",
    )
    .unwrap();
    let server = Server::spawn(
        &t.path().join("store"),
        &["serve", "--config", &s(&cfg)],
        &[("FERRY_PUSH_TOKEN", TOKEN), ("RUST_LOG", "info")],
    );
    let key = keygen(t.path(), "k");
    make_v1(&t.path().join("v1"));
    ferry_ok(&push_args(
        &s(&t.path().join("v1")),
        &server.url,
        "1.0.0",
        &s(&key.path),
    ));
    assert!(
        t.path().join("store/CURRENT").exists(),
        "data is relative to the file"
    );
    // Every log line is a JSON object; request lines carry fields.
    let log = server.log.lock().unwrap().clone();
    let mut saw_request = false;
    for line in &log {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["fields"]["path"] == "/v1/manifests" {
            assert_eq!(v["fields"]["status"], 201);
            saw_request = true;
        }
    }
    assert!(saw_request, "{log:?}");

    // An unknown key: an error that names it.
    std::fs::write(&cfg, "data = \"store\"\nmax-request = 64\n").unwrap();
    let err = ferry_err(&["serve", "--config", &s(&cfg)]);
    assert!(err.contains("max-request"), "{err}");
}

#[test]
fn backup_while_serving_then_restore() {
    let t = tmp();
    let data = t.path().join("data");
    let mut server = Server::start(&data);
    let key = keygen(t.path(), "k");
    make_v1(&t.path().join("v1"));
    make_v2(&t.path().join("v1"), &t.path().join("v2"));
    ferry_ok(&push_args(
        &s(&t.path().join("v1")),
        &server.url,
        "1.0.0",
        &s(&key.path),
    ));
    let backup = t.path().join("backup-1");
    let out = json(&ferry_ok(&[
        "backup",
        "--data",
        &s(&data),
        "--out",
        &s(&backup),
        "--json",
    ]));
    assert_eq!(out["taken_by"], "server");
    assert!(out["chunks"].as_u64().unwrap() > 10, "{out}");
    // The server goes on; later writes are not in the backup.
    ferry_ok(&push_args(
        &s(&t.path().join("v2")),
        &server.url,
        "1.1.0",
        &s(&key.path),
    ));
    // An existing target is refused.
    let err = ferry_err(&["backup", "--data", &s(&data), "--out", &s(&backup)]);
    assert!(err.contains("already exists"), "{err}");
    server.kill();

    // With no server running the command takes the checkpoint itself.
    let out = json(&ferry_ok(&[
        "backup",
        "--data",
        &s(&data),
        "--out",
        &s(&t.path().join("backup-2")),
        "--json",
    ]));
    assert_eq!(out["taken_by"], "direct");

    // Restore: the backup directory becomes a data directory.
    let restored = t.path().join("restored");
    copy_tree(&backup, &restored);
    let fsck = json(&ferry_ok(&["fsck", "--data", &s(&restored), "--json"]));
    assert_eq!(fsck["clean"], true, "{fsck}");
    let server = Server::start(&restored);
    let install = t.path().join("inst");
    let out = json(&ferry_ok(&sync_args(
        &server.url,
        &s(&install),
        &key.public,
    )));
    assert_eq!(
        out["version"], "1.0.0",
        "the channel as it was at backup time"
    );
    assert_same_tree(&t.path().join("v1"), &install.join("current"));
    // And the restored server takes new pushes.
    ferry_ok(&push_args(
        &s(&t.path().join("v2")),
        &server.url,
        "1.1.0",
        &s(&key.path),
    ));
    let out = json(&ferry_ok(&sync_args(
        &server.url,
        &s(&install),
        &key.public,
    )));
    assert_eq!(out["version"], "1.1.0");
}

#[test]
fn sync_by_cacheable_gets_builds_the_same_tree() {
    let t = tmp();
    let server = Server::start(&t.path().join("data"));
    let key = keygen(t.path(), "k");
    make_v1(&t.path().join("v1"));
    make_v2(&t.path().join("v1"), &t.path().join("v2"));
    let install = t.path().join("inst");
    let inst = s(&install);
    for (dir, version) in [("v1", "1.0.0"), ("v2", "1.1.0")] {
        ferry_ok(&push_args(
            &s(&t.path().join(dir)),
            &server.url,
            version,
            &s(&key.path),
        ));
        let mut a = sync_args(&server.url, &inst, &key.public);
        a.extend(["--fetch", "get"]);
        let out = json(&ferry_ok(&a));
        assert_eq!(out["version"], version);
        assert_same_tree(&t.path().join(dir), &install.join("current"));
    }
    let text = http_get(&server.url, "/metrics", &[]).text();
    let gets: f64 = text
        .lines()
        .find(|l| {
            l.starts_with("ferry_http_requests_total{route=\"GET /v1/chunks/{id}\",status=\"200\"}")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(gets > 10.0, "{text}");
    assert!(
        !text.contains("route=\"POST /v1/chunks/fetch\""),
        "no batched fetch: {text}"
    );
}
