//! The client install directory: layout, persistent state, the lock, and the
//! atomic switch of `current`.
//!
//! ```text
//! INSTALL/
//!   current/            the live tree (a real directory)
//!   versions/V/         kept previous versions, complete trees
//!   .ferry/state.json   what is installed, last channel sequence seen
//!   .ferry/manifests/   signed manifests of installed versions
//!   .ferry/records/     the newest signed channel record per channel
//!   .ferry/staging/     trees being built (resumable)
//!   .ferry/switch.json  journal of a switch in progress
//!   .ferry/trash/       trees being deleted
//!   .ferry/lock         held by the one ferry process working here
//! ```

mod fsutil;
mod layout;
mod lock;
mod state;
mod switch;

pub use fsutil::{fsync_dir, write_atomic};
pub use layout::Layout;
pub use lock::InstallLock;
pub use state::{
    random_client_id, Blocked, InstallState, Installed, KeyState, Probation, Seen, Staged,
};
pub use switch::{recover, switch_to, SwitchSource};
