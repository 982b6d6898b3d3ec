//! End to end, deployment policies: percentage rollouts, pause, revert,
//! scheduled and per-group activation (staged ahead, switched without the
//! server), minimum versions. The clock is injected with the hidden `--now`
//! option, so nothing here sleeps.

mod support;

use std::path::{Path, PathBuf};

use support::*;

struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    server: Server,
    key: Key,
    now: u64,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let server = Server::start(&root.join("data"));
    let key = keygen(&root, "publisher.key");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    World {
        _tmp: tmp,
        root,
        server,
        key,
        now,
    }
}

/// A small app whose files say which version they are.
fn make_version(dir: &Path, version: &str) {
    let mut r = rng(7);
    write(&dir.join("lib/core.bin"), &random_bytes(&mut r, 200_000));
    write(&dir.join("VERSION"), version.as_bytes());
    write(
        &dir.join(format!("notes/{version}.txt")),
        &text_bytes(&mut r, 3_000),
    );
}

impl World {
    fn p(&self, rel: &str) -> String {
        self.root.join(rel).display().to_string()
    }

    /// Pushes a version without touching any channel.
    fn push(&self, version: &str) {
        let dir = self.root.join(format!("src-{version}"));
        make_version(&dir, version);
        ferry_ok(&[
            "push",
            dir.to_str().unwrap(),
            "--server",
            &self.server.url,
            "--app",
            "demo",
            "--version",
            version,
            "--key",
            self.key.path.to_str().unwrap(),
            "--token",
            TOKEN,
            "--quiet",
        ]);
    }

    fn publisher_args<'a>(&'a self, cmd: &'a str) -> Vec<String> {
        [
            cmd,
            "--server",
            &self.server.url,
            "--app",
            "demo",
            "--channel",
            "stable",
            "--key",
            self.key.path.to_str().unwrap(),
            "--token",
            TOKEN,
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn promote(&self, version: &str, extra: &[&str]) -> serde_json::Value {
        let mut a = self.publisher_args("promote");
        a.extend(["--version".to_string(), version.to_string()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        json(&ferry_ok(&a))
    }

    fn publisher(&self, cmd: &str) -> serde_json::Value {
        let a = self.publisher_args(cmd);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        json(&ferry_ok(&a))
    }

    /// Syncs install `name` (client id from its own file) at time `now`.
    fn sync_args(&self, url: &str, name: &str, now: u64, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = sync_args(url, &self.p(name), &self.key.public)
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend([
            "--client-id-file".to_string(),
            self.p(&format!("{name}.id")),
            "--now".to_string(),
            now.to_string(),
        ]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    fn sync(&self, name: &str, now: u64, extra: &[&str]) -> serde_json::Value {
        let a = self.sync_args(&self.server.url, name, now, extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        json(&ferry_ok(&a))
    }

    fn running(&self, name: &str) -> String {
        std::fs::read_to_string(self.root.join(name).join("current/VERSION")).unwrap()
    }

    /// Gives install `name` a fixed client id, so samples are reproducible.
    fn fix_id(&self, name: &str, i: usize) {
        std::fs::write(
            self.root.join(format!("{name}.id")),
            format!("client-{i:08}\n"),
        )
        .unwrap();
    }
}

#[test]
fn percentage_rollout_pause_and_revert() {
    let w = world();
    w.push("1.0.0");
    w.push("2.0.0");
    w.promote("1.0.0", &[]);
    let clients: Vec<String> = (0..24).map(|i| format!("c{i}")).collect();
    for (i, c) in clients.iter().enumerate() {
        w.fix_id(c, i);
        assert_eq!(w.sync(c, w.now, &[])["version"], "1.0.0");
    }

    // 30%: a sample moves, the rest stay on 1.0.0.
    let r = w.promote("2.0.0", &["--percent", "30"]);
    assert_eq!(r["fallback_version"], "1.0.0");
    let on_v2 = |w: &World| -> Vec<String> {
        clients
            .iter()
            .filter(|c| w.running(c) == "2.0.0")
            .cloned()
            .collect()
    };
    for c in &clients {
        w.sync(c, w.now, &[]);
    }
    let first = on_v2(&w);
    assert!(
        !first.is_empty() && first.len() < clients.len() / 2,
        "{first:?}"
    );
    let outside = clients.iter().find(|c| !first.contains(c)).unwrap();
    let s = w.sync(outside, w.now, &[]);
    assert_eq!(s["updated"], false);
    assert!(
        s["decision"]
            .as_str()
            .unwrap()
            .contains("outside the rollout"),
        "{s}"
    );

    // 70%: everyone from the first sample stays, more join.
    w.promote("2.0.0", &["--percent", "70"]);
    for c in &clients {
        w.sync(c, w.now, &[]);
    }
    let second = on_v2(&w);
    assert!(first.iter().all(|c| second.contains(c)));
    assert!(second.len() > first.len() && second.len() < clients.len());

    // `ferry sync` reported each update: the status counts who runs what.
    let out = ferry_ok(&[
        "status",
        "--server",
        &w.server.url,
        "--app",
        "demo",
        "--json",
    ]);
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    let counts = &st["channels"][0]["versions"];
    let ok_of = |v: &str| {
        counts
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["version"] == v)
            .map_or(0, |c| c["ok"].as_u64().unwrap())
    };
    assert_eq!(ok_of("2.0.0"), second.len() as u64, "{st}");
    assert_eq!(
        ok_of("1.0.0"),
        (clients.len() - second.len()) as u64,
        "{st}"
    );

    // Paused: adopters keep 2.0.0, nobody new adopts it even at 100%.
    w.promote("2.0.0", &["--percent", "100"]);
    let paused = w.publisher("pause");
    assert_eq!(paused["paused"], true);
    for c in &clients {
        let s = w.sync(c, w.now, &[]);
        if !second.contains(c) {
            assert_eq!(s["updated"], false);
            assert_eq!(s["decision"], "the rollout is paused", "{s}");
        }
    }
    assert_eq!(on_v2(&w), second);
    let err = ferry_err(
        &w.publisher_args("pause")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(err.contains("already paused"), "{err}");

    // Revert: a new record naming the older version moves everyone back,
    // and clients accept the lower version because it is marked so.
    let r = w.promote("1.0.0", &["--note", "2.0.0 crashes on start"]);
    assert_eq!(r["revert"], true);
    for c in &clients {
        let s = w.sync(c, w.now, &[]);
        assert_eq!(s["version"], "1.0.0", "{s}");
    }

    // The history keeps every state, signed, oldest first.
    let out = ferry_ok(&[
        "history",
        "--server",
        &w.server.url,
        "--app",
        "demo",
        "--channel",
        "stable",
        "--trust",
        &w.key.public,
        "--json",
    ]);
    let h: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let versions: Vec<&str> = h.iter().map(|e| e["version"].as_str().unwrap()).collect();
    assert_eq!(
        versions,
        ["1.0.0", "2.0.0", "2.0.0", "2.0.0", "2.0.0", "1.0.0"]
    );
    assert_eq!(h[4]["paused"], true);
    assert_eq!(h[5]["revert"], true);
    assert_eq!(h[5]["note"], "2.0.0 crashes on start");
    assert!(h.iter().all(|e| e["verified"] == true));
    let seqs: Vec<u64> = h.iter().map(|e| e["sequence"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    let text = ferry_ok(&[
        "history",
        "--server",
        &w.server.url,
        "--app",
        "demo",
        "--channel",
        "stable",
    ]);
    assert!(text.contains("PAUSED") && text.contains("revert"), "{text}");
}

#[test]
fn scheduled_and_group_activation_stage_ahead_and_switch_offline() {
    let w = world();
    let t0 = w.now;
    w.push("1.0.0");
    w.push("2.0.0");
    w.promote("1.0.0", &[]);
    for c in ["a", "b", "c"] {
        w.sync(c, t0, &[]);
    }
    let at = |d: u64| format!("@{}", t0 + d);
    w.promote(
        "2.0.0",
        &[
            "--group",
            &format!("branch-a={}", at(100)),
            "--group",
            &format!("branch-b={}", at(200)),
            "--activate-at",
            &at(300),
        ],
    );
    // Everyone downloads ahead; nobody switches yet.
    let sa = w.sync("a", t0 + 10, &["--group", "branch-a"]);
    let sb = w.sync("b", t0 + 10, &["--group", "branch-b"]);
    let sc = w.sync("c", t0 + 10, &[]);
    for (s, d) in [(&sa, 100), (&sb, 200), (&sc, 300)] {
        assert_eq!(s["staged"], true, "{s}");
        assert_eq!(s["staged_version"], "2.0.0");
        assert_eq!(s["activates_at"], t0 + d);
        assert_eq!(s["updated"], false);
        assert!(s["chunks_fetched"].as_u64().unwrap() > 0);
    }
    for c in ["a", "b", "c"] {
        assert_eq!(w.running(c), "1.0.0");
    }
    // Checking again before the time downloads nothing new.
    let again = w.sync("a", t0 + 20, &["--group", "branch-a"]);
    assert_eq!(again["staged"], true);
    assert_eq!(again["chunks_fetched"], 0);

    // The server goes away; at its time each client switches on its own.
    let mut w = w;
    let url = w.server.url.clone();
    w.server.kill();
    let offline = |name: &str, now: u64, group: &str| {
        let mut extra = vec!["--timeout", "2"];
        if !group.is_empty() {
            extra.extend(["--group", group]);
        }
        let a = w.sync_args(&url, name, now, &extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        ferry(&a)
    };
    let out = offline("a", t0 + 150, "branch-a");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(s["updated"], true);
    assert_eq!(s["offline"], true);
    assert_eq!(w.running("a"), "2.0.0");
    // b's time has not come: with the server gone that is an error, and
    // b still runs 1.0.0.
    let out = offline("b", t0 + 150, "branch-b");
    assert!(!out.status.success());
    assert_eq!(w.running("b"), "1.0.0");
    let out = offline("b", t0 + 250, "branch-b");
    assert!(out.status.success());
    assert_eq!(w.running("b"), "2.0.0");
    // A client that comes online after the time switches at once.
    let out = offline("c", t0 + 10_000, "");
    assert!(out.status.success());
    assert_eq!(w.running("c"), "2.0.0");
}

#[test]
fn minimum_version_forces_the_update_and_blocks_rollback() {
    let w = world();
    w.push("1.0.0");
    w.push("2.0.0");
    w.push("3.0.0");
    w.promote("1.0.0", &[]);
    w.fix_id("x", 1);
    w.sync("x", w.now, &["--keep", "3"]);
    // 0% and a far activation time: nobody moves...
    w.promote("2.0.0", &["--percent", "0"]);
    assert_eq!(w.sync("x", w.now, &["--keep", "3"])["updated"], false);
    // ...unless they are below the minimum, which overrides both.
    let far = format!("@{}", w.now + 86_400 * 30);
    w.promote(
        "3.0.0",
        &[
            "--percent",
            "0",
            "--activate-at",
            &far,
            "--min-version",
            "2.0.0",
        ],
    );
    let s = w.sync("x", w.now, &["--keep", "3"]);
    assert_eq!(s["updated"], true, "{s}");
    assert_eq!(s["version"], "3.0.0");
    assert!(s["decision"].as_str().unwrap().contains("minimum"), "{s}");
    // Rolling back to 1.0.0 (kept) would go below the minimum: refused.
    let err = ferry_err(&["rollback", "--install", &w.p("x")]);
    assert!(err.contains("at least version 2.0.0"), "{err}");
    assert_eq!(w.running("x"), "3.0.0");
    // A minimum above the promoted version is a publisher mistake.
    let mut a = w.publisher_args("promote");
    a.extend(["--version", "2.0.0", "--min-version", "3.0.0"].map(String::from));
    let err = ferry_err(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("newer than the version promoted"), "{err}");
}
