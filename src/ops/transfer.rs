//! Moving a log out of and into a ledger: `export` writes stored events byte for byte as
//! NDJSON (the SHA-256 of each line is its hash); `import` appends such a file to an
//! empty ledger of either backend. Exporting from one backend and importing into the
//! other is the migration path between them.
//!
//! An import reads its file twice: first it checks every line ([`Chain`]: positions from
//! 1 without gaps, each line linked to the previous one's hash, gap-free stream versions,
//! every payload decoding), touching nothing; only a file that passes is appended, in
//! chunks through the store's own append (so the projections are built as the events
//! land). A bad file leaves the target as empty as it was. Idempotency records are not
//! part of the log and do not travel.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use serde::Serialize;

use super::{OpsError, read};
use crate::store::chain::{Chain, Checked};
use crate::store::envelope::hex;
use crate::store::{EventStore, ExportRange, StoreError};

/// How many events one import transaction appends: large enough that the durable commit
/// is paid rarely, small enough that a transaction's dirty pages stay modest.
const IMPORT_CHUNK: usize = 5_000;

pub fn export(
    store: &dyn EventStore,
    range: &ExportRange,
    out: &mut dyn Write,
    progress: &dyn Fn(u64),
) -> Result<u64, OpsError> {
    if range.to.is_some_and(|to| to < range.from) {
        return Err(OpsError::Usage("--to must not be before --from".into()));
    }
    Ok(store.export(range, out, progress)?)
}

/// What an import ended with: compare `head_hash` and `state_hash` with the source's
/// digest.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Imported {
    pub events: u64,
    pub head_position: u64,
    pub head_hash: String,
    pub state_hash: String,
}

/// Checks every line of `file`, calling `each` with every event and its bytes; returns
/// the walk. A line that fails names its number.
fn walk(
    file: &Path,
    mut each: impl FnMut(Checked, &[u8]) -> Result<(), OpsError>,
) -> Result<Chain, OpsError> {
    let f = File::open(file)
        .map_err(|e| OpsError::Open(format!("cannot open {}: {e}", file.display())))?;
    let mut lines = BufReader::with_capacity(1 << 20, f);
    let mut chain = Chain::new();
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let read = lines
            .read_until(b'\n', &mut line)
            .map_err(|e| OpsError::Failed(format!("reading {}: {e}", file.display())))?;
        if read == 0 {
            return Ok(chain);
        }
        number += 1;
        let Some(body) = line.strip_suffix(b"\n") else {
            return Err(OpsError::BadLine {
                line: number,
                detail: "the file ends inside this line (truncated?)".into(),
            });
        };
        let event = chain.next(number, None, body).map_err(|e| match e {
            StoreError::Corrupt { detail, .. } => OpsError::BadLine {
                line: number,
                detail,
            },
            other => other.into(),
        })?;
        each(event, body)?;
    }
}

/// Imports `file` into `store`, which must hold no events. `expect_head`, when given, is
/// the source's head hash (hex): the last line's bytes are only covered by it.
pub fn import(
    store: &dyn EventStore,
    file: &Path,
    expect_head: Option<&str>,
    progress: &dyn Fn(u64),
) -> Result<Imported, OpsError> {
    let held = store.read()?.head()?.position;
    if held > 0 {
        return Err(OpsError::Usage(format!(
            "the target already holds {held} events; import only into an empty ledger"
        )));
    }
    let checked = walk(file, |_, _| Ok(()))?;
    let last = checked.head();
    if let Some(expected) = expect_head
        && !expected.eq_ignore_ascii_case(&hex(&last.hash))
    {
        return Err(OpsError::BadLine {
            line: last.position,
            detail: format!(
                "the file ends at hash {}, not at the expected {expected}",
                hex(&last.hash)
            ),
        });
    }
    let mut chunk: Vec<(Checked, Vec<u8>)> = Vec::with_capacity(IMPORT_CHUNK);
    let flush = |chunk: &mut Vec<(Checked, Vec<u8>)>| -> Result<(), OpsError> {
        if chunk.is_empty() {
            return Ok(());
        }
        store.write(&mut |txn| {
            for (event, body) in chunk.iter() {
                txn.append_checked(event, body)?;
            }
            Ok(())
        })?;
        progress(chunk.last().map_or(0, |(e, _)| e.env.position));
        chunk.clear();
        Ok(())
    };
    let walked = walk(file, |event, body| {
        chunk.push((event, body.to_vec()));
        if chunk.len() == IMPORT_CHUNK {
            flush(&mut chunk)?;
        }
        Ok(())
    })
    .map_err(|e| changed_underway(e, last.position))?;
    flush(&mut chunk)?;
    if walked.head() != last {
        return Err(changed_underway(
            OpsError::Failed("the file changed between its check and its import".into()),
            last.position,
        ));
    }
    let digest = read(store, |r| r.digest(None))?;
    Ok(Imported {
        events: digest.position,
        head_position: digest.position,
        head_hash: hex(&digest.hash),
        state_hash: hex(&digest.state_hash),
    })
}

/// A failure in the second pass means the file changed after it was checked: what is
/// appended so far stays (it passed every check), and the operator is told.
fn changed_underway(e: OpsError, checked: u64) -> OpsError {
    OpsError::Failed(format!(
        "{e}; the file passed its check up to position {checked} but failed while importing, \
         so the target holds part of it: empty the target and import again"
    ))
}
