//! `ferry keygen`: a new publisher key pair.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use ferry_protocol::SecretKey;

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the secret key (created with mode 0600; never overwritten).
    #[arg(long, value_name = "FILE")]
    pub secret_key: PathBuf,
}

pub fn run(a: KeygenArgs) -> Result<ExitCode> {
    let mut seed = [0u8; 32];
    getrandom_seed(&mut seed)?;
    let key = SecretKey::from_seed(seed);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&a.secret_key).with_context(|| {
        format!(
            "cannot create {} (an existing key is never overwritten)",
            a.secret_key.display()
        )
    })?;
    f.write_all(key.to_text().as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", a.secret_key.display()))?;
    eprintln!(
        "secret key written to {} (keep it on the build server only)",
        a.secret_key.display()
    );
    eprintln!("public key (give it to clients as --trust):");
    println!("{}", key.public());
    Ok(ExitCode::SUCCESS)
}

fn getrandom_seed(seed: &mut [u8; 32]) -> Result<()> {
    use rand::RngCore;
    rand::rngs::OsRng
        .try_fill_bytes(seed)
        .context("the operating system's random number generator failed")
}
