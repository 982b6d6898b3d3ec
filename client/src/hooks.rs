//! Install hooks: commands run around an update, each with a timeout.
//!
//! * `post-install`: the new tree is complete in staging (not live yet);
//!   `FERRY_TREE` points at it. A failure abandons the update.
//! * `pre-switch`: right before the atomic switch; a failure aborts it and
//!   the old version stays live.
//! * `post-switch`: the new version is live in `current/`; a failure is
//!   logged (the switch has happened).
//!
//! Every hook gets `FERRY_INSTALL`, `FERRY_VERSION` (the new version),
//! `FERRY_PREVIOUS_VERSION` (may be empty) and `FERRY_TREE`, and runs through
//! the platform shell (`sh -c` / `cmd /C`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::ClientError;

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookPoint {
    PostInstall,
    PreSwitch,
    PostSwitch,
}

impl HookPoint {
    pub fn name(self) -> &'static str {
        match self {
            HookPoint::PostInstall => "post-install",
            HookPoint::PreSwitch => "pre-switch",
            HookPoint::PostSwitch => "post-switch",
        }
    }
}

/// One `--hook POINT=COMMAND`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub point: HookPoint,
    pub command: String,
}

impl std::str::FromStr for Hook {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (point, command) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected POINT=COMMAND"))?;
        let point = match point.trim() {
            "post-install" => HookPoint::PostInstall,
            "pre-switch" => HookPoint::PreSwitch,
            "post-switch" => HookPoint::PostSwitch,
            other => {
                return Err(format!(
                    "unknown hook point {other:?} (post-install, pre-switch or post-switch)"
                ))
            }
        };
        if command.trim().is_empty() {
            return Err(format!("{s:?}: empty command"));
        }
        Ok(Hook {
            point,
            command: command.to_string(),
        })
    }
}

/// What a hook sees of the update.
pub struct HookEnv<'a> {
    pub install: &'a Path,
    pub version: &'a str,
    pub previous: Option<&'a str>,
    /// The tree the hook is about (staging before the switch, `current/`
    /// after).
    pub tree: &'a Path,
}

/// Runs the hooks of `point` in order; the first failure (exit status,
/// could not start, or timeout) is the error. Blocking.
pub fn run_hooks(
    hooks: &[Hook],
    point: HookPoint,
    env: &HookEnv<'_>,
    timeout: Duration,
) -> Result<(), ClientError> {
    for h in hooks.iter().filter(|h| h.point == point) {
        run_one(h, env, timeout).map_err(|reason| ClientError::Hook {
            point: point.name(),
            command: h.command.chars().take(200).collect(),
            reason,
        })?;
    }
    Ok(())
}

fn run_one(h: &Hook, env: &HookEnv<'_>, timeout: Duration) -> Result<(), String> {
    let mut cmd = if cfg!(windows) {
        let mut c = Command::new("cmd");
        c.arg("/C").arg(&h.command);
        c
    } else {
        let mut c = Command::new("sh");
        c.arg("-c").arg(&h.command);
        c
    };
    cmd.current_dir(env.install)
        .env("FERRY_INSTALL", env.install)
        .env("FERRY_VERSION", env.version)
        .env("FERRY_PREVIOUS_VERSION", env.previous.unwrap_or(""))
        .env("FERRY_TREE", env.tree)
        .stdin(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return Ok(()),
            Ok(Some(st)) => return Err(format!("exited with {st}")),
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "still running after {} s; killed",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn env(dir: &Path) -> HookEnv<'_> {
        HookEnv {
            install: dir,
            version: "2.0",
            previous: Some("1.0"),
            tree: dir,
        }
    }

    #[test]
    fn parses_points_and_refuses_nonsense() {
        let h: Hook = "pre-switch=systemctl stop app".parse().unwrap();
        assert_eq!(h.point, HookPoint::PreSwitch);
        assert_eq!(h.command, "systemctl stop app");
        assert!("during=x".parse::<Hook>().is_err());
        assert!("pre-switch=".parse::<Hook>().is_err());
        assert!("no-equals".parse::<Hook>().is_err());
    }

    #[test]
    fn success_failure_timeout_and_environment() {
        let d = tempfile::tempdir().unwrap();
        let t = Duration::from_secs(5);
        let hook = |c: &str| Hook {
            point: HookPoint::PreSwitch,
            command: c.into(),
        };
        let out = d.path().join("out");
        let write = hook(&format!(
            "echo \"$FERRY_VERSION $FERRY_PREVIOUS_VERSION\" > {}",
            out.display()
        ));
        run_hooks(&[write], HookPoint::PreSwitch, &env(d.path()), t).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "2.0 1.0\n");
        // Hooks of other points do not run.
        run_hooks(&[hook("exit 1")], HookPoint::PostSwitch, &env(d.path()), t).unwrap();
        let e = run_hooks(&[hook("exit 4")], HookPoint::PreSwitch, &env(d.path()), t).unwrap_err();
        assert!(e.to_string().contains("pre-switch"), "{e}");
        let e = run_hooks(
            &[hook("sleep 5")],
            HookPoint::PreSwitch,
            &env(d.path()),
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(e.to_string().contains("killed"), "{e}");
    }
}
