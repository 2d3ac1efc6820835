//! The published document held to the server by an API fuzzer: schemathesis (pinned in
//! `tools/fuzz/requirements.txt`, installed here into `target/fuzz-venv` when missing, as
//! `.ci/run` does) runs every check it has against every operation of every surface (the
//! native API and the five dialects), in its examples, fuzzing and stateful phases (the
//! last follows the document's links from each create to what it made), with the
//! configuration in `tools/fuzz/schemathesis.toml` and the hooks in `tools/fuzz/hooks.py`,
//! and must find no failure: no 5xx, no schema-valid request refused, no schema-violating
//! one accepted, every answer's status, headers, content type and body as documented,
//! no operation that ignores its credentials.
//!
//! The server holds a small world first, as a vendor's client would find it: a customer
//! with a project, an administrator of it with a token (the dialects' caller), a flavor,
//! an image, a network, a key and two instances.
//!
//! `LEDGER_FUZZ_EXAMPLES` sets the examples per operation of the fuzzing phase (default
//! 15; the README's by-hand figure used 200), `LEDGER_FUZZ_SEED` replays a run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

use crate::harness::{Catalog, Server, TOKEN};

fn venv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-venv")
}

fn schemathesis() -> PathBuf {
    static INSTALL: Once = Once::new();
    let st = venv().join("bin/st");
    INSTALL.call_once(|| {
        if st.exists() {
            return;
        }
        let requirements =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/fuzz/requirements.txt");
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(venv())
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv().join("bin/pip"))
                .args(["install", "-q", "-r"])
                .arg(&requirements)
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            ok,
            "could not install schemathesis into {}",
            venv().display()
        );
    });
    assert!(st.exists(), "schemathesis is not in {}", st.display());
    st
}

/// The world the fuzzer starts from, as the environment its configuration reads.
async fn world(s: &Server) -> Vec<(&'static str, String)> {
    let c = Catalog::create(s).await;
    let (_, token) = s.administrator("ann", &c.project).await;
    for name in ["a", "b"] {
        let r = s.post("/v1/instances", c.instance(name)).await;
        assert!(r.status.is_success(), "{}", r.body);
    }
    vec![
        ("LEDGER_FUZZ_TOKEN", TOKEN.to_string()),
        ("LEDGER_FUZZ_USER_TOKEN", token),
        ("LEDGER_FUZZ_ACCOUNT", format!("a-{}", c.customer)),
        ("LEDGER_FUZZ_PROJECT", c.project.clone()),
        ("LEDGER_FUZZ_IMAGE", c.image.clone()),
        ("LEDGER_FUZZ_FLAVOR", c.flavor.clone()),
    ]
}

#[tokio::test]
async fn schemathesis_finds_no_failure_in_any_surface() {
    let st = schemathesis();
    let s = Server::start(&["--driver-delay-ms", "5"]);
    let env = world(&s).await;
    let examples = std::env::var("LEDGER_FUZZ_EXAMPLES").unwrap_or_else(|_| "15".into());
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/fuzz");
    let mut cmd = Command::new(st);
    // Hypothesis keeps its example database in the working directory: not the checkout.
    cmd.current_dir(venv())
        .envs(env)
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONPATH", &fuzz)
        .arg("--config-file")
        .arg(fuzz.join("schemathesis.toml"))
        .arg("run")
        .arg(format!("{}/openapi.json", s.base))
        // The live feed never ends a response; its own tests cover it.
        .args(["--exclude-path", "/v1/events/stream"])
        // The coverage phase trips hypothesis's lambda cache (FlakyFailure raised from
        // `lambda_sources`, then a hang) in this schemathesis; the other three do not.
        .args(["--phases", "examples,fuzzing,stateful"])
        .args(["--max-examples", &examples])
        // One worker: hypothesis's lambda cache is not safe across threads (it raised
        // FlakyFailure from `lambda_sources` with two).
        .args(["--workers", "1", "--no-color"]);
    if let Ok(seed) = std::env::var("LEDGER_FUZZ_SEED") {
        cmd.args(["--seed", &seed]);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join schemathesis")
        .expect("run schemathesis");
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = text.rfind("SUMMARY").map(|at| &text[at..]).unwrap_or(&text);
    println!("{summary}");
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for phase in ["Fuzzing", "Stateful"] {
        assert!(
            summary.contains(&format!("✅ {phase}")),
            "the {phase} phase did not run and pass:\n{summary}"
        );
    }
    let generated: u64 = summary
        .lines()
        .find_map(|l| l.trim().split_once(" generated, "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        generated >= 1000,
        "only {generated} test cases ran:\n{summary}"
    );
}
