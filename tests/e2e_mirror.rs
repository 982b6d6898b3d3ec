//! End to end, a branch-office mirror: `ferry serve --mirror-of` in front of
//! a real upstream. Clients sync from the mirror with the publisher's key
//! only (no trust in the mirror); the mirror fills itself on demand, picks
//! up a new record after its TTL, and keeps serving what it has when the
//! upstream is gone.

mod support;

use std::path::Path;

use support::*;

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn metric(url: &str, name: &str) -> f64 {
    let text = http_get(url, "/metrics", &[]).text();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn mirror_fills_on_demand_follows_promotes_and_outlives_its_upstream() {
    let t = tempfile::tempdir().unwrap();
    let mut upstream = Server::start(&t.path().join("upstream"));
    let key = keygen(t.path(), "k");
    make_v1(&t.path().join("v1"));
    make_v2(&t.path().join("v1"), &t.path().join("v2"));
    ferry_ok(&push_args(
        &s(&t.path().join("v1")),
        &upstream.url,
        "1.0.0",
        &s(&key.path),
    ));
    let mirror = Server::mirror(
        &t.path().join("mirror"),
        &upstream.url,
        &["--mirror-ttl", "1s"],
    );

    // Client 1 syncs from the mirror, which fills itself from the upstream.
    let c1 = t.path().join("client-1");
    let out = json(&ferry_ok(&sync_args(&mirror.url, &s(&c1), &key.public)));
    assert_eq!(out["version"], "1.0.0");
    assert_same_tree(&t.path().join("v1"), &c1.join("current"));
    let filled = metric(
        &mirror.url,
        "ferry_mirror_fills_total{kind=\"chunk\",result=\"filled\"}",
    );
    assert!(filled > 10.0, "{filled}");

    // A new version on the upstream reaches the mirror's clients after the
    // record TTL.
    ferry_ok(&push_args(
        &s(&t.path().join("v2")),
        &upstream.url,
        "1.1.0",
        &s(&key.path),
    ));
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let out = json(&ferry_ok(&sync_args(&mirror.url, &s(&c1), &key.public)));
    assert_eq!(out["version"], "1.1.0");
    assert_same_tree(&t.path().join("v2"), &c1.join("current"));

    // A mirror takes no pushes.
    let err = ferry_err(&push_args(
        &s(&t.path().join("v2")),
        &mirror.url,
        "1.0.1",
        &s(&key.path),
    ));
    assert!(err.contains("403"), "{err}");
    assert!(err.contains("read-only mirror"), "{err}");

    // The upstream goes away: a fresh client still gets 1.1.0 entirely
    // from the mirror's store.
    upstream.kill();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let c2 = t.path().join("client-2");
    let out = json(&ferry_ok(&sync_args(&mirror.url, &s(&c2), &key.public)));
    assert_eq!(out["version"], "1.1.0");
    assert_same_tree(&t.path().join("v2"), &c2.join("current"));
    assert!(
        metric(
            &mirror.url,
            "ferry_mirror_fills_total{kind=\"record\",result=\"error\"}"
        ) >= 1.0
    );

    // A chunk neither the mirror nor the (gone) upstream has: a clear 502.
    let gone = http_get(&mirror.url, &format!("/v1/chunks/{}", "ab".repeat(32)), &[]);
    assert_eq!(gone.status, 502, "{}", gone.text());
    assert!(gone.text().contains("upstream"), "{}", gone.text());
}

#[test]
fn mirror_with_a_pinned_key_refuses_what_another_key_signed() {
    let t = tempfile::tempdir().unwrap();
    let upstream = Server::start(&t.path().join("upstream"));
    let key = keygen(t.path(), "k");
    let other = keygen(t.path(), "other");
    make_v1(&t.path().join("v1"));
    ferry_ok(&push_args(
        &s(&t.path().join("v1")),
        &upstream.url,
        "1.0.0",
        &s(&key.path),
    ));
    let pin = format!("demo={}", other.public);
    let mirror = Server::mirror(
        &t.path().join("mirror"),
        &upstream.url,
        &["--app-key", &pin],
    );
    // The record is not kept (the mirror has none to serve) ...
    let err = ferry_err(&sync_args(
        &mirror.url,
        &s(&t.path().join("c")),
        &key.public,
    ));
    assert!(err.contains("404"), "{err}");
    assert!(
        metric(
            &mirror.url,
            "ferry_mirror_fills_total{kind=\"record\",result=\"error\"}"
        ) >= 1.0
    );
}

#[test]
fn clients_arriving_together_cost_the_upstream_one_fetch_per_chunk() {
    let t = tempfile::tempdir().unwrap();
    let upstream = Server::start(&t.path().join("upstream"));
    let key = keygen(t.path(), "k");
    make_v1(&t.path().join("v1"));
    ferry_ok(&push_args(
        &s(&t.path().join("v1")),
        &upstream.url,
        "1.0.0",
        &s(&key.path),
    ));
    let mirror = Server::mirror(&t.path().join("mirror"), &upstream.url, &[]);
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let (url, public) = (mirror.url.clone(), key.public.clone());
            let dir = t.path().join(format!("client-{i}"));
            std::thread::spawn(move || {
                let out = json(&ferry_ok(&sync_args(&url, &s(&dir), &public)));
                assert_eq!(out["version"], "1.0.0");
                dir
            })
        })
        .collect();
    for h in handles {
        let dir = h.join().unwrap();
        assert_same_tree(&t.path().join("v1"), &dir.join("current"));
    }
    let up_gets = metric(
        &upstream.url,
        "ferry_http_requests_total{route=\"GET /v1/chunks/{id}\",status=\"200\"}",
    );
    let filled = metric(
        &mirror.url,
        "ferry_mirror_fills_total{kind=\"chunk\",result=\"filled\"}",
    );
    let manifests = metric(
        &upstream.url,
        "ferry_http_requests_total{route=\"GET /v1/manifests/{id}\",status=\"200\"}",
    );
    assert!(filled > 10.0);
    assert_eq!(
        up_gets, filled,
        "every chunk fetched from the upstream once"
    );
    assert_eq!(manifests, 1.0, "the manifest fetched once");
}
