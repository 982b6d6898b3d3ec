//! `ferry scan` without the rest of Ferry: walks, cuts and hashes a folder
//! with the default parameters through the same `scan_tree`, and prints the
//! same JSON fields `ferry scan --json` prints about the data. For measuring
//! ingest speed where building the whole release binary (RocksDB included)
//! is not worth it:
//!
//! ```sh
//! cargo build --release --example scan
//! FERRY=target/release/examples/scan scripts/bench-scan.sh CORPUS_DIR
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use ferry_chunker::{scan_tree, ScanOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = match args.as_slice() {
        [cmd, dir, rest @ ..] if cmd == "scan" && rest.iter().all(|a| a == "--json") => {
            PathBuf::from(dir)
        }
        _ => {
            eprintln!("usage: scan scan DIR [--json]");
            return ExitCode::from(2);
        }
    };
    match scan_tree(&dir, &ScanOptions::default()) {
        Ok(tree) => {
            let s = tree.stats;
            let secs = s.elapsed.as_secs_f64();
            println!(
                "{{\"files\":{},\"bytes\":{},\"chunks\":{},\"unique_chunks\":{},\"seconds\":{secs},\"mib_per_second\":{}}}",
                s.files,
                s.bytes,
                s.chunks,
                s.unique_chunks,
                s.bytes as f64 / 1048576.0 / secs.max(1e-9)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
