//! Ferry's client side: `push` and `promote` for the build server, `sync`,
//! `rollback` and `verify` for client machines.
//!
//! No RocksDB and no server code are linked here; tokio runs the network,
//! while hashing, compression and file work run on blocking threads and
//! rayon.

pub mod agent;
pub mod api;
pub mod error;
pub mod history;
pub mod hooks;
pub mod http;
pub mod install;
pub mod launch;
pub mod progress;
pub mod promote;
pub mod push;
pub mod status;
pub mod sync;
pub mod verify;

pub use error::ClientError;
pub use history::{history, HistoryEntry};
pub use http::{Http, Timeouts, TlsRoots};
pub use promote::{
    promote, rotate_keys, set_paused, PromoteOptions, PromoteReport, RolloutOptions,
};
pub use push::{push, PushOptions, PushReport};
pub use sync::{
    repair_install, rollback, switch_due, sync, RollbackReport, SyncOptions, SyncReport,
    UnchangedFiles,
};
pub use verify::{verify_install, VerifyReport};
