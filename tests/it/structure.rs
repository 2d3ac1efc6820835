//! The layering rules of ARCHITECTURE.md, checked on the source tree: `domain` is pure,
//! `query` and `domain` know nothing of HTTP, surfaces never touch the store, a dialect
//! never imports another surface, and no file outgrows one concern.

use std::path::{Path, PathBuf};

/// Lines a source file may have before it should be split by concern.
const MAX_LINES: usize = 700;

/// What `domain` may not mention: I/O, async runtimes, stores, the clock, randomness.
const IMPURE: &[&str] = &[
    "actix",
    "tokio",
    "redb",
    "postgres",
    "std::fs",
    "std::net",
    "Utc::now",
    "Instant::now",
    "SystemTime",
    "rand::",
];

/// What no surface may mention: store handles and snapshots are the query and service
/// layers' business.
const STORE_ACCESS: &[&str] = &["Snapshot", "EventStore", ".store()"];

/// What a dialect may not import: the store, or another surface.
const DIALECT_IMPORTS: &[&str] = &[
    "crate::store",
    "super::super::store",
    "api::native",
    "super::native",
];

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Code lines: comments are allowed to name anything.
fn code(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l))
}

/// Whether `line` names `word` as a whole identifier (`deleteSnapshots` does not name
/// `Snapshot`).
fn names(line: &str, word: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    line.match_indices(word).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        !(word.starts_with(ident) && before.is_some_and(ident))
    })
}

fn mentions(text: &str, words: &[&str]) -> Vec<String> {
    code(text)
        .filter_map(|(n, line)| {
            words
                .iter()
                .find(|w| names(line, w))
                .map(|w| format!("line {n} names `{w}`"))
        })
        .collect()
}

/// Every broken rule under `src`, one line each.
pub fn violations(src: &Path) -> Vec<String> {
    let mut all = Vec::new();
    files(src, &mut all);
    let mut out = Vec::new();
    for path in all {
        let rel = path.strip_prefix(src).unwrap_or(&path).to_path_buf();
        let shown = rel.display().to_string();
        let Ok(text) = std::fs::read_to_string(&path) else {
            out.push(format!("{shown}: unreadable"));
            continue;
        };
        let lines = text.lines().count();
        if lines > MAX_LINES {
            out.push(format!("{shown}: {lines} lines (at most {MAX_LINES})"));
        }
        let mut parts = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().to_string());
        let top = parts.next().unwrap_or_default();
        let second = parts.next().unwrap_or_default();
        let report = |what: &str, found: Vec<String>, out: &mut Vec<String>| {
            for f in found {
                out.push(format!("{shown}: {what}: {f}"));
            }
        };
        match top.as_str() {
            "domain" => report("domain must stay pure", mentions(&text, IMPURE), &mut out),
            "query" => report(
                "query must not know HTTP",
                mentions(&text, &["actix", "HttpRequest", "HttpResponse"]),
                &mut out,
            ),
            // Operator commands reuse query and store, never a surface's handlers.
            "ops" => report(
                "ops never goes through a surface",
                mentions(&text, &["crate::api", "actix"]),
                &mut out,
            ),
            "api" => {
                report(
                    "a surface never opens the store",
                    mentions(&text, STORE_ACCESS),
                    &mut out,
                );
                // `src/api/<dialect>/...`: every folder under api but the native one.
                let is_dialect = rel.components().count() > 2 && second != "native";
                if is_dialect {
                    report(
                        "a dialect imports only shared api parts, query, service and domain",
                        mentions(&text, DIALECT_IMPORTS),
                        &mut out,
                    );
                }
            }
            _ => {}
        }
    }
    out.sort();
    out
}

#[test]
fn the_source_tree_keeps_its_layering() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(found.is_empty(), "layering broken:\n{}", found.join("\n"));
}

#[test]
fn each_rule_reports_a_deliberate_breach() {
    let tmp = tempfile::tempdir().expect("dir");
    let src = tmp.path();
    let write = |rel: &str, text: &str| {
        let path = src.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write("domain/clock.rs", "fn now() { chrono::Utc::now(); }\n");
    write("query/web.rs", "use actix_web::HttpResponse;\n");
    write("ops/audit.rs", "use crate::api::native::events;\n");
    write("api/wakame/mod.rs", "use crate::store::Snapshot;\n");
    write("api/mogan/mod.rs", "use crate::api::native::Ctx;\n");
    write("api/native/reads.rs", "fn f(s: &dyn EventStore) {}\n");
    write("service/big.rs", &"let x = 1;\n".repeat(MAX_LINES + 1));
    // Comments may name anything; the native surface may import itself.
    write("domain/ok.rs", "// no tokio here\nfn pure() {}\n");
    write("api/native/mod.rs", "use crate::api::native::routes;\n");
    let found = violations(src);
    let has = |needle: &str| found.iter().any(|f| f.contains(needle));
    assert!(has("domain/clock.rs: domain must stay pure"), "{found:#?}");
    assert!(has("query/web.rs: query must not know HTTP"), "{found:#?}");
    assert!(
        has("ops/audit.rs: ops never goes through a surface"),
        "{found:#?}"
    );
    assert!(
        has("api/wakame/mod.rs: a surface never opens the store"),
        "{found:#?}"
    );
    assert!(has("api/wakame/mod.rs: a dialect imports"), "{found:#?}");
    assert!(has("api/mogan/mod.rs: a dialect imports"), "{found:#?}");
    assert!(
        has("api/native/reads.rs: a surface never opens the store"),
        "{found:#?}"
    );
    assert!(has("service/big.rs: 701 lines"), "{found:#?}");
    assert!(!has("domain/ok.rs"), "{found:#?}");
    assert!(!has("api/native/mod.rs"), "{found:#?}");
    assert_eq!(found.len(), 8, "{found:#?}");
}
