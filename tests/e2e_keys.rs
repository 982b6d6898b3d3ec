//! Publisher key rotation end to end: `ferry rotate-key` announces a new
//! key in a channel record signed by the old key and the new one; the
//! server and every client that sees the record trust the new key from then
//! on and never the old one again (even where it is still configured), so a
//! retired or stolen key can no longer publish or be replayed by a mirror.

mod support;

use std::path::Path;

use ferry_protocol::signed::KIND_CHANNEL;
use ferry_protocol::{unix_now, ChannelRecord, SecretKey};
use support::*;

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn secret(k: &Key) -> SecretKey {
    SecretKey::from_text(&std::fs::read_to_string(&k.path).unwrap()).unwrap()
}

#[test]
fn rotation_moves_server_and_clients_to_the_new_key_and_revokes_the_old() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let server = Server::start(&data);
    let old = keygen(t.path(), "old");
    let new = keygen(t.path(), "new");
    let (v1, v2, v3) = (
        t.path().join("v1"),
        t.path().join("v2"),
        t.path().join("v3"),
    );
    make_v1(&v1);
    make_v2(&v1, &v2);
    make_v2(&v2, &v3);
    write(&v3.join("README.txt"), b"Sample app, version 3\n");
    ferry_ok(&push_args(&s(&v1), &server.url, "1.0.0", &s(&old.path)));
    let inst = t.path().join("i");
    // The client's configuration pins the old key, and keeps doing so.
    let sync = |url: &str| ferry(&sync_args(url, &s(&inst), &old.public));
    assert!(sync(&server.url).status.success());
    // Another client, away during the whole rotation.
    let away = t.path().join("away");
    ferry_ok(&sync_args(&server.url, &s(&away), &old.public));

    // Before the rotation the new key is nobody.
    let err = ferry_err(&push_args(&s(&v2), &server.url, "1.1.0", &s(&new.path)));
    assert!(err.contains("403"), "{err}");

    let out = ferry_ok(&[
        "rotate-key",
        "--server",
        &server.url,
        "--app",
        "demo",
        "--channel",
        "stable",
        "--key",
        &s(&old.path),
        "--new-key",
        &s(&new.path),
        "--token",
        TOKEN,
        "--note",
        "yearly rotation",
    ]);
    assert!(out.contains("keys announced"), "{out}");
    // The client learns the rotation at its next check (same version).
    let r = json(&String::from_utf8_lossy(&sync(&server.url).stdout));
    assert_eq!(r["version"], "1.0.0");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(inst.join(".ferry/state.json")).unwrap()).unwrap();
    assert_eq!(state["keys"]["rotated"][0], new.public.as_str(), "{state}");
    assert_eq!(state["keys"]["revoked"][0], old.public.as_str(), "{state}");

    // The new key publishes; the client, still configured with the old
    // key only, installs what the new key signed.
    ferry_ok(&push_args(&s(&v2), &server.url, "1.1.0", &s(&new.path)));
    let r = json(&String::from_utf8_lossy(&sync(&server.url).stdout));
    assert_eq!(r["version"], "1.1.0", "{r}");
    assert_same_tree(&v2, &inst.join("current"));
    // The client that was away sees only a record signed by the new key:
    // it follows the rotation in the channel's history, then installs.
    let out = ferry(&sync_args(&server.url, &s(&away), &old.public));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("following a key rotation"));
    assert_same_tree(&v2, &away.join("current"));

    // The old key (say it was stolen) can no longer publish here...
    let err = ferry_err(&push_args(&s(&v3), &server.url, "6.6.6", &s(&old.path)));
    assert!(err.contains("403"), "{err}");
    // ...nor through a mirror that still accepts it: the client refuses,
    // though its --trust still names the old key.
    let mirror = Server::start(&t.path().join("mirror"));
    ferry_ok(&push_args(&s(&v3), &mirror.url, "6.6.6", &s(&old.path)));
    let secret_old = secret(&old);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = ferry_client::Http::new(&mirror.url, Default::default())
        .unwrap()
        .with_token(Some(TOKEN.into()));
    // A record far ahead in sequence, so only the key can stop it.
    let id = {
        let env = rt.block_on(http.get_version("demo", "6.6.6")).unwrap();
        ferry_protocol::ManifestId::of(
            &ferry_protocol::Envelope::decode(&env, usize::MAX)
                .unwrap()
                .body,
        )
    };
    let rec = ChannelRecord {
        app: "demo".into(),
        channel: "stable".into(),
        sequence: 1000,
        version: "6.6.6".into(),
        manifest_id: id,
        issued_at: unix_now(),
        expires_at: None,
        policy: Default::default(),
        keys: Vec::new(),
    };
    rt.block_on(http.publish_channel(
        "demo",
        "stable",
        secret_old.sign(KIND_CHANNEL, rec.encode()).encode(),
    ))
    .unwrap();
    let out = sync(&mirror.url);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("not signed by any trusted key"),
        "{err}"
    );
    assert_same_tree(&v2, &inst.join("current"));

    // A client installed after the rotation may pin the new key alone.
    let fresh = t.path().join("fresh");
    ferry_ok(&sync_args(&server.url, &s(&fresh), &new.public));
    assert_same_tree(&v2, &fresh.join("current"));

    // The store stays consistent: old manifests keep their old signatures.
    server.stop();
    let out = ferry(&["fsck", "--data", &s(&data)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_rotation_the_new_key_did_not_sign_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let server = Server::start(&t.path().join("data"));
    let old = keygen(t.path(), "old");
    let stranger = SecretKey::from_seed([42; 32]);
    make_v1(&t.path().join("v1"));
    ferry_ok(&push_args(
        &s(&t.path().join("v1")),
        &server.url,
        "1.0.0",
        &s(&old.path),
    ));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = ferry_client::Http::new(&server.url, Default::default())
        .unwrap()
        .with_token(Some(TOKEN.into()));
    let env = rt.block_on(http.get_version("demo", "1.0.0")).unwrap();
    let id = ferry_protocol::ManifestId::of(
        &ferry_protocol::Envelope::decode(&env, usize::MAX)
            .unwrap()
            .body,
    );
    let rec = ChannelRecord {
        app: "demo".into(),
        channel: "stable".into(),
        sequence: 2,
        version: "1.0.0".into(),
        manifest_id: id,
        issued_at: unix_now(),
        expires_at: None,
        policy: Default::default(),
        keys: vec![stranger.public()],
    };
    // Signed by the old key only: announcing a key nobody proved to hold.
    let bytes = secret(&old).sign(KIND_CHANNEL, rec.encode()).encode();
    let err = rt
        .block_on(http.publish_channel("demo", "stable", bytes))
        .unwrap_err()
        .to_string();
    assert!(err.contains("403") && err.contains("did not sign"), "{err}");
    // The old key still works: nothing changed.
    let inst = t.path().join("i");
    ferry_ok(&sync_args(&server.url, &s(&inst), &old.public));
}
