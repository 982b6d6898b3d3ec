//! Client reports (the outcome of each update check) and the status the
//! server aggregates from them.
//!
//! ```text
//! report = { 0: client id, 1: channel, ? 2: version running, 3: outcome,
//!            ? 4: error class, ? 5: version the outcome is about }
//! status = { 0: [channel record envelope (bytes) ...],
//!            1: [[channel, version, outcome, clients (uint), last report (unix s)] ...] }
//! ```
//!
//! Reports are unauthenticated telemetry: anyone can send one, so they are
//! small, strictly validated, and only ever counted, never acted on.

use minicbor::Decoder;

use crate::cbor::{encoder, expect_end, ok, required, MapReader};
use crate::error::DecodeError;
use crate::names::{validate_channel, validate_version};

/// Largest report body.
pub const MAX_REPORT_BYTES: usize = 2048;
/// Largest status body a client accepts.
pub const MAX_STATUS_BYTES: usize = 16 * 1024 * 1024;
const MAX_STATUS_ROWS: u64 = 100_000;
const MAX_ERROR_CLASS: usize = 64;

/// What an update check ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Runs what the channel offers it (updated or already there).
    Ok,
    /// Downloaded a version waiting for its activation time.
    Staged,
    /// The check or update failed.
    Failed,
    /// A new version failed on probation; the client switched back.
    Reverted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Staged => "staged",
            Outcome::Failed => "failed",
            Outcome::Reverted => "reverted",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Some(match s {
            "ok" => Outcome::Ok,
            "staged" => Outcome::Staged,
            "failed" => Outcome::Failed,
            "reverted" => Outcome::Reverted,
            _ => return None,
        })
    }
}

/// One client's latest word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// 8-128 of `[A-Za-z0-9_-]`.
    pub client_id: String,
    pub channel: String,
    /// The version in `current`, if any.
    pub version: Option<String>,
    pub outcome: Outcome,
    /// A short class of error (`network`, `signature`, ...).
    pub error: Option<String>,
    /// The version the outcome is about (the staged, failed or reverted one).
    pub subject: Option<String>,
}

/// Checks a client id.
pub fn validate_client_id(id: &str) -> Result<(), String> {
    let ok = (8..=128).contains(&id.len())
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if ok {
        Ok(())
    } else {
        Err("a client id is 8 to 128 letters, digits, '-' or '_'".into())
    }
}

impl Report {
    pub fn encode(&self) -> Vec<u8> {
        let n = 3
            + u64::from(self.version.is_some())
            + u64::from(self.error.is_some())
            + u64::from(self.subject.is_some());
        let mut e = encoder();
        ok(e.map(n));
        ok(ok(e.u8(0)).str(&self.client_id));
        ok(ok(e.u8(1)).str(&self.channel));
        if let Some(v) = &self.version {
            ok(ok(e.u8(2)).str(v));
        }
        ok(ok(e.u8(3)).str(self.outcome.as_str()));
        if let Some(x) = &self.error {
            ok(ok(e.u8(4)).str(x));
        }
        if let Some(v) = &self.subject {
            ok(ok(e.u8(5)).str(v));
        }
        e.into_writer()
    }

    pub fn decode(bytes: &[u8]) -> Result<Report, DecodeError> {
        const WHAT: &str = "report";
        if bytes.len() > MAX_REPORT_BYTES {
            return Err(DecodeError::TooLarge {
                what: WHAT,
                len: bytes.len(),
                max: MAX_REPORT_BYTES,
            });
        }
        let mut d = Decoder::new(bytes);
        let mut r = MapReader::new(&mut d, WHAT)?;
        let (mut id, mut channel, mut version, mut outcome, mut error, mut subject) =
            (None, None, None, None, None, None);
        while let Some(k) = r.next_key()? {
            match k {
                0 => id = Some(r.str()?),
                1 => channel = Some(r.str()?),
                2 => version = Some(r.str()?),
                3 => {
                    let s = r.str()?;
                    outcome = Some(Outcome::parse(&s).ok_or_else(|| {
                        DecodeError::invalid(WHAT, format!("unknown outcome {:?}", trunc(&s)))
                    })?)
                }
                4 => error = Some(r.str()?),
                5 => subject = Some(r.str()?),
                other => return Err(r.unknown(other)),
            }
        }
        expect_end(&d, WHAT)?;
        let rep = Report {
            client_id: required(id, WHAT, "client id")?,
            channel: required(channel, WHAT, "channel")?,
            version,
            outcome: required(outcome, WHAT, "outcome")?,
            error,
            subject,
        };
        validate_client_id(&rep.client_id).map_err(|e| DecodeError::invalid(WHAT, e))?;
        validate_channel(&rep.channel)?;
        for v in rep.version.iter().chain(&rep.subject) {
            validate_version(v)?;
        }
        if let Some(x) = &rep.error {
            let fine = x.len() <= MAX_ERROR_CLASS
                && x.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
            if !fine {
                return Err(DecodeError::invalid(
                    WHAT,
                    format!("error class: at most {MAX_ERROR_CLASS} of [A-Za-z0-9_-]"),
                ));
            }
        }
        Ok(rep)
    }
}

fn trunc(s: &str) -> String {
    s.chars().take(32).collect()
}

/// Clients per (channel, version, outcome).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRow {
    pub channel: String,
    /// The version the clients run (`-` for none).
    pub version: String,
    pub outcome: Outcome,
    pub clients: u64,
    pub last_report_at: u64,
}

/// What `GET /v1/apps/{app}/status` returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// The current signed record of each channel.
    pub channels: Vec<Vec<u8>>,
    pub rows: Vec<StatusRow>,
}

impl Status {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = encoder();
        ok(e.map(2));
        ok(ok(e.u8(0)).array(self.channels.len() as u64));
        for c in &self.channels {
            ok(e.bytes(c));
        }
        ok(ok(e.u8(1)).array(self.rows.len() as u64));
        for r in &self.rows {
            ok(ok(ok(
                ok(ok(ok(e.array(5)).str(&r.channel)).str(&r.version)).str(r.outcome.as_str())
            )
            .u64(r.clients))
            .u64(r.last_report_at));
        }
        e.into_writer()
    }

    pub fn decode(bytes: &[u8]) -> Result<Status, DecodeError> {
        const WHAT: &str = "status";
        if bytes.len() > MAX_STATUS_BYTES {
            return Err(DecodeError::TooLarge {
                what: WHAT,
                len: bytes.len(),
                max: MAX_STATUS_BYTES,
            });
        }
        let mut d = Decoder::new(bytes);
        let mut r = MapReader::new(&mut d, WHAT)?;
        let (mut channels, mut rows) = (None, None);
        let arr = |r: &mut MapReader<'_, '_>| -> Result<u64, DecodeError> {
            let n =
                r.d.array()
                    .map_err(|e| r.err(e))?
                    .ok_or_else(|| DecodeError::invalid(WHAT, "indefinite array"))?;
            if n > MAX_STATUS_ROWS {
                return Err(DecodeError::invalid(WHAT, format!("{n} items is too many")));
            }
            Ok(n)
        };
        while let Some(k) = r.next_key()? {
            match k {
                0 => {
                    let n = arr(&mut r)?;
                    channels = Some(
                        (0..n)
                            .map(|_| r.bytes().map(<[u8]>::to_vec))
                            .collect::<Result<Vec<_>, _>>()?,
                    );
                }
                1 => {
                    let n = arr(&mut r)?;
                    let mut v = Vec::new();
                    for _ in 0..n {
                        if arr(&mut r)? != 5 {
                            return Err(DecodeError::invalid(WHAT, "a row has 5 items"));
                        }
                        let channel = r.str()?;
                        let version = r.str()?;
                        let o = r.str()?;
                        let outcome = Outcome::parse(&o).ok_or_else(|| {
                            DecodeError::invalid(WHAT, format!("unknown outcome {:?}", trunc(&o)))
                        })?;
                        v.push(StatusRow {
                            channel,
                            version,
                            outcome,
                            clients: r.u64()?,
                            last_report_at: r.u64()?,
                        });
                    }
                    rows = Some(v);
                }
                other => return Err(r.unknown(other)),
            }
        }
        expect_end(&d, WHAT)?;
        Ok(Status {
            channels: required(channels, WHAT, "channels")?,
            rows: required(rows, WHAT, "rows")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            client_id: "0123456789abcdef".into(),
            channel: "stable".into(),
            version: Some("1.0.0".into()),
            outcome: Outcome::Reverted,
            error: Some("crashed".into()),
            subject: Some("1.1.0".into()),
        }
    }

    #[test]
    fn report_round_trip_and_validation() {
        let r = sample();
        assert_eq!(Report::decode(&r.encode()).unwrap(), r);
        let bad_id = Report {
            client_id: "x".into(),
            ..sample()
        };
        assert!(Report::decode(&bad_id.encode()).is_err());
        let bad_err = Report {
            error: Some("a b".into()),
            ..sample()
        };
        assert!(Report::decode(&bad_err.encode()).is_err());
        let mut long = sample().encode();
        long.resize(MAX_REPORT_BYTES + 1, 0);
        assert!(Report::decode(&long).is_err());
    }

    #[test]
    fn status_round_trip() {
        let s = Status {
            channels: vec![vec![1, 2, 3]],
            rows: vec![StatusRow {
                channel: "stable".into(),
                version: "1.0.0".into(),
                outcome: Outcome::Ok,
                clients: 12,
                last_report_at: 99,
            }],
        };
        assert_eq!(Status::decode(&s.encode()).unwrap(), s);
        assert!(Status::decode(&[0xa0]).is_err());
    }
}
