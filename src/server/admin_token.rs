//! The bootstrap staff token: from `LEDGER_ADMIN_TOKEN`, else from `<data-dir>/admin-token`,
//! else generated on first start, written there with mode 0600 and printed once.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use rand::RngCore;

const FILE_NAME: &str = "admin-token";

pub fn load_or_create(data_dir: &Path) -> anyhow::Result<String> {
    if let Ok(token) = std::env::var("LEDGER_ADMIN_TOKEN") {
        let token = token.trim().to_string();
        anyhow::ensure!(
            token.len() >= 16,
            "LEDGER_ADMIN_TOKEN must be at least 16 characters"
        );
        return Ok(token);
    }
    // The embedded store creates the directory; on PostgreSQL it may hold only this file.
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let path = data_dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => return Ok(token.trim().to_string()),
        Ok(_) => anyhow::bail!(
            "{} is empty; delete it to generate a new token",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = crate::store::envelope::hex(&bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(token.as_bytes())?;
    file.sync_all()?;
    // Printed once, on first start, so the operator can copy it; never logged afterwards.
    println!(
        "generated admin token (stored in {}): {token}",
        path.display()
    );
    Ok(token)
}
