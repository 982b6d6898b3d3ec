//! Validation of the names that appear in URLs, manifests and install
//! directories: app, channel, version, and relative paths inside a version.
//!
//! Names become URL segments and directory names on clients, so they are
//! restricted to a portable alphabet and may never start with a dot.

use crate::error::NameError;

/// Longest app or channel name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest version string.
pub const MAX_VERSION_LEN: usize = 128;
/// Longest relative path in a manifest.
pub const MAX_PATH_LEN: usize = 4096;
/// Longest single path component (what common file systems allow).
pub const MAX_COMPONENT_LEN: usize = 255;

fn check_token(
    what: &'static str,
    value: &str,
    max: usize,
    extra: &'static str,
) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { what });
    }
    if value.len() > max {
        return Err(NameError::TooLong { what, max });
    }
    for c in value.chars() {
        if !(c.is_ascii_alphanumeric() || extra.contains(c)) {
            return Err(NameError::BadChar {
                what,
                value: value.to_string(),
                found: c,
                allowed: extra_description(extra),
            });
        }
    }
    let first = value.chars().next().unwrap_or('.');
    if !first.is_ascii_alphanumeric() {
        return Err(NameError::BadStart {
            what,
            value: value.to_string(),
            found: first,
        });
    }
    Ok(())
}

fn extra_description(extra: &'static str) -> &'static str {
    match extra {
        "._-" => "'.', '_', '-'",
        _ => "'.', '_', '-', '+'",
    }
}

/// An application name: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
pub fn validate_app(name: &str) -> Result<(), NameError> {
    check_token("app name", name, MAX_NAME_LEN, "._-")
}

/// A channel name: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
pub fn validate_channel(name: &str) -> Result<(), NameError> {
    check_token("channel name", name, MAX_NAME_LEN, "._-")
}

/// A version string: `[A-Za-z0-9][A-Za-z0-9._+-]{0,127}`. It names a
/// directory on every client, so no separators and no leading dot.
pub fn validate_version(v: &str) -> Result<(), NameError> {
    check_token("version", v, MAX_VERSION_LEN, "._-+")
}

/// Windows device names: a file with one of these as its stem cannot be
/// created on Windows, so manifests never carry them.
const WINDOWS_RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// A relative path inside a version: `/`-separated UTF-8 components, none
/// empty, `.` or `..`, no backslash, colon or control character, no Windows
/// device name. Such a path can only name something inside the directory it
/// is joined to, on every platform Ferry targets.
pub fn validate_rel_path(path: &str) -> Result<(), NameError> {
    let bad = |reason| {
        Err(NameError::Path {
            path: path.chars().take(200).collect(),
            reason,
        })
    };
    if path.is_empty() {
        return bad("empty path");
    }
    if path.len() > MAX_PATH_LEN {
        return bad("path longer than 4096 bytes");
    }
    if path.starts_with('/') {
        return bad("absolute path");
    }
    for comp in path.split('/') {
        if comp.is_empty() {
            return bad("empty component (leading, trailing or doubled '/')");
        }
        if comp == "." || comp == ".." {
            return bad("'.' or '..' component");
        }
        if comp.len() > MAX_COMPONENT_LEN {
            return bad("component longer than 255 bytes");
        }
        if comp.chars().any(|c| c.is_control()) {
            return bad("control character");
        }
        if comp.contains('\\') {
            return bad("backslash (a Windows separator)");
        }
        if comp.contains(':') {
            return bad("colon (a Windows drive or stream separator)");
        }
        let stem = comp.split('.').next().unwrap_or("");
        if WINDOWS_RESERVED
            .iter()
            .any(|r| r.eq_ignore_ascii_case(stem.trim_end()))
        {
            return bad("Windows reserved device name");
        }
    }
    Ok(())
}

/// The parent of a validated relative path, or `None` at top level.
pub fn parent_of(path: &str) -> Option<&str> {
    path.rfind('/').map(|i| &path[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_app("demo").is_ok());
        assert!(validate_app("My.App_2-x").is_ok());
        assert!(validate_app("").is_err());
        assert!(validate_app(".hidden").is_err());
        assert!(validate_app("a/b").is_err());
        assert!(validate_app(&"a".repeat(65)).is_err());
        assert!(validate_version("1.2.3+build.7").is_ok());
        assert!(validate_version("2.0.0-rc.1").is_ok());
        assert!(validate_version("..").is_err());
        assert!(validate_version("1 2").is_err());
        assert!(validate_channel("stable").is_ok());
        assert!(validate_channel("st%61ble").is_err());
    }

    #[test]
    fn paths() {
        for ok in [
            "a",
            "a/b/c.txt",
            "numpy/_core/lib.so",
            "x..y",
            ".gitignore",
            "console/x",
        ] {
            assert!(validate_rel_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a/./b",
            "a//b",
            "a/",
            "c:x",
            "a\\b",
            "CON",
            "dir/nul.txt",
            "Com1.log",
            "a\0b",
            "a\nb",
        ] {
            assert!(validate_rel_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parent() {
        assert_eq!(parent_of("a/b/c"), Some("a/b"));
        assert_eq!(parent_of("a"), None);
    }
}
