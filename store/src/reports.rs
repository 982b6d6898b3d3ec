//! Client reports (latest per client) and their aggregation into a status,
//! plus the list of an app's channels.
//!
//! `reports.v1`: key `app 0x00 client id`, value `at (u64 le) || report`.
//! One entry per client, overwritten by its next report, so the column
//! family grows with the number of clients, not with time.

use std::collections::BTreeMap;

use ferry_protocol::report::{Report, StatusRow};
use rocksdb::{Direction, IteratorMode};

use crate::db::{Store, CF_CHANNELS, CF_REPORTS};
use crate::error::StoreError;
use crate::keys;

impl Store {
    /// Keeps `report` as the latest word of its client (not synced: losing
    /// the last reports in a crash costs nothing).
    pub fn put_report(&self, app: &str, report: &Report, at: u64) -> Result<(), StoreError> {
        let mut v = at.to_le_bytes().to_vec();
        v.extend_from_slice(&report.encode());
        self.db
            .put_cf(self.cf(CF_REPORTS), keys::pair(app, &report.client_id), v)?;
        Ok(())
    }

    /// Clients per (channel, version, outcome) from the latest reports.
    pub fn report_counts(&self, app: &str) -> Result<Vec<StatusRow>, StoreError> {
        let prefix = keys::pair(app, "");
        let mut values = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(CF_REPORTS),
            IteratorMode::From(&prefix, Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            values.push(v);
        }
        Ok(tally_reports(values.iter().map(|v| &v[..])))
    }

    /// The current record of every channel of `app`, by channel name.
    pub fn channels_of(&self, app: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let prefix = keys::pair(app, "");
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(CF_CHANNELS),
            IteratorMode::From(&prefix, Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            out.push((name, v.to_vec()));
        }
        Ok(out)
    }
}

/// Clients per (channel, version, outcome) from stored report values
/// (`at` as u64le, then the report's CBOR), for every store engine; values
/// that do not decode are skipped.
pub fn tally_reports<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Vec<StatusRow> {
    let mut counts: BTreeMap<(String, String, _), (u64, u64)> = BTreeMap::new();
    for v in values {
        if v.len() < 8 {
            continue;
        }
        let at = u64::from_le_bytes(v[..8].try_into().unwrap_or([0; 8]));
        let Ok(r) = Report::decode(&v[8..]) else {
            continue;
        };
        let version = r.version.unwrap_or_else(|| "-".into());
        let e = counts.entry((r.channel, version, r.outcome)).or_default();
        e.0 += 1;
        e.1 = e.1.max(at);
    }
    counts
        .into_iter()
        .map(|((channel, version, outcome), (clients, last))| StatusRow {
            channel,
            version,
            outcome,
            clients,
            last_report_at: last,
        })
        .collect()
}
