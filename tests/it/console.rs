//! The web console end to end, in headless Chromium driven over WebDriver (Debian's
//! `chromium` and `chromium-driver`, installed here when missing, as `.ci/run` does): sign
//! in, create and stop an instance, watch the timeline update live, slide back to before
//! the stop and see the earlier state, diff, draw the chart, search the audit trail.
//! Screenshots go to `target/console-e2e/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::harness::{Catalog, Server, TOKEN};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Installs Debian's Chromium and its driver once if they are missing, so `cargo test`
/// needs no set-up; fails loudly if that is not possible (never a silent skip).
fn ensure_chromium() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists() {
            return;
        }
        let _ = Command::new("sh")
            .arg("-c")
            .arg("(apt-get install -y -q chromium chromium-driver || (apt-get update -q && apt-get install -y -q chromium chromium-driver)) >/dev/null 2>&1")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    });
    assert!(
        Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
        "the console test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
    );
}

/// chromedriver; the browser it started goes first (it would outlive its driver).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-TERM", "-P", &self.0.id().to_string()])
            .status();
        std::thread::sleep(Duration::from_millis(300));
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Browser {
    http: reqwest::Client,
    session: String,
    shots: PathBuf,
    _driver: Driver,
}

impl Browser {
    async fn start() -> Browser {
        ensure_chromium();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let driver = Driver(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn chromedriver"),
        );
        let http = reqwest::Client::new();
        let root = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{root}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1000"]
            }
        }}});
        let r: Value = http
            .post(format!("{root}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session json");
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-e2e");
        std::fs::create_dir_all(&shots).expect("screenshot dir");
        Browser {
            http,
            session: format!("{root}/session/{id}"),
            shots,
            _driver: driver,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("webdriver json");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// The element matching `css`, waiting up to 20 s for it to appear.
    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self
                .call(
                    reqwest::Method::POST,
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            if let Some(id) = v[ELEMENT].as_str() {
                return id.to_string();
            }
            assert!(Instant::now() < deadline, "no element {css}: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("/element/{id}/click"),
                Some(json!({})),
            )
            .await;
        assert!(v.is_null(), "click {css}: {v}");
    }

    async fn keys(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("/element/{id}/value"),
                Some(json!({"text": text})),
            )
            .await;
        assert!(v.is_null(), "keys to {css}: {v}");
    }

    async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until the text of `css` contains `needle`.
    async fn wait_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let t = self.text(css).await;
            if t.contains(needle) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never showed {needle:?}; it shows {t:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn script(&self, js: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
        .await
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("png"))
            .expect("base64");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Console messages at error level since the last call.
    async fn errors(&self) -> Vec<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/se/log",
                Some(json!({"type": "browser"})),
            )
            .await;
        v.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn the_console_signs_in_creates_stops_travels_back_in_time_and_diffs() {
    crate::harness::Backend::Redb.enter();
    let s = Server::start(&["--driver-delay-ms", "300"]);
    Catalog::create(&s).await;
    let b = Browser::start().await;

    b.goto(&format!("{}/", s.base)).await;
    b.keys("#token", TOKEN).await;
    b.click("#signin").await;
    b.wait_text("#who", "Signed in as admin").await;
    b.screenshot("1-fleet-empty").await;

    // Create through the console's form; it opens the instance page.
    b.click("#create summary").await;
    b.keys("#c-name", "console-vm").await;
    b.click("#c-submit").await;
    b.wait_text("#inst-title", "console-vm").await;
    b.wait_text("#inst-title", "running").await;
    let hash = b.script("return location.hash").await;
    let id = hash
        .as_str()
        .and_then(|h| h.strip_prefix("#/instances/"))
        .expect("instance page")
        .to_string();

    // Stop: offered because the API says so; the timeline updates live from the feed.
    b.click("#act-stop").await;
    b.wait_text("#timeline", "StopRequested").await;
    b.wait_text("#timeline", "Stopped").await;
    b.wait_text("#inst-title", "stopped").await;
    b.wait_text("#inst-actions", "Start").await;
    b.screenshot("2-instance-stopped").await;

    // Slide back, one event per key press, to just before the stop was requested.
    let events = s.get(&format!("/v1/instances/{id}/events")).await.body;
    let stop_at = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["type"] == "StopRequested")
        .and_then(|e| e["position"].as_u64())
        .expect("the stop's position");
    let head = s.position().await;
    b.wait_text("#asof-label", &format!("head at position {head}"))
        .await;
    let presses = head - (stop_at - 1);
    b.keys("#asof-slider", &"\u{E012}".repeat(presses as usize))
        .await;
    b.wait_text("#asof-label", &format!("as of position {}", stop_at - 1))
        .await;
    b.wait_text("#inst-title", "running").await;
    assert_eq!(b.text("#inst-view td[data-field=state]").await, "running");
    assert!(
        b.text("#inst-actions").await.contains("live view"),
        "no actions on a past view"
    );
    b.screenshot("3-instance-as-of-before-stop").await;

    // The diff from that point to now.
    b.keys("#diff-from", &(stop_at - 1).to_string()).await;
    b.click("#diff-run").await;
    let row = b
        .wait_text("#diff-table tr[data-field=state]", "stopped")
        .await;
    assert!(row.contains("running"), "{row}");
    assert!(b.text("#diff-out").await.contains("StopRequested"));
    b.screenshot("4-diff").await;

    // Back to now, then the chart and the audit trail.
    b.click("#asof-now").await;
    b.wait_text("#asof-label", "live").await;
    b.wait_text("#inst-title", "stopped").await;
    b.goto(&format!("{}/#/chart", s.base)).await;
    b.find("#chart svg").await;
    b.wait_text("#chart .chart-data", "running").await;
    b.screenshot("5-chart").await;
    b.goto(&format!("{}/#/audit", s.base)).await;
    b.keys("#a-type", "StopRequested").await;
    b.click("#audit-form button").await;
    b.wait_text("#audit-table tbody", "StopRequested").await;
    b.screenshot("6-audit").await;
    b.goto(&format!("{}/#/fleet", s.base)).await;
    b.wait_text("#fleet-table tbody", "console-vm").await;
    b.screenshot("7-fleet").await;

    let errors = b.errors().await;
    assert!(errors.is_empty(), "browser console errors: {errors:#?}");
}

#[tokio::test]
async fn a_refused_action_shows_the_servers_problem_and_a_bad_token_is_refused() {
    crate::harness::Backend::Redb.enter();
    // Provisioning waits an hour, so the instance stays where it is however slow the run.
    let s = Server::start(&["--driver-delay-ms", "3600000"]);
    let c = Catalog::create(&s).await;
    let id = s.post("/v1/instances", c.instance("slow")).await.id();
    let b = Browser::start().await;
    b.goto(&format!("{}/", s.base)).await;
    b.keys("#token", "not-a-token").await;
    b.click("#signin").await;
    b.wait_text("#signin-error", "401").await;
    b.keys("#token", TOKEN).await;
    b.click("#signin").await;
    b.wait_text("#who", "Signed in").await;
    b.goto(&format!("{}/#/instances/{id}", s.base)).await;
    b.wait_text("#inst-title", "provisioning").await;
    let offered = b.text("#inst-actions").await;
    assert!(
        !offered.contains("Start"),
        "not offered while provisioning: {offered}"
    );
    // A button pressed on a page gone stale: the server refuses, the console shows why.
    b.script(&format!("act('{id}', 'start')")).await;
    let shown = b.wait_text("#inst-error", "409").await;
    assert!(shown.contains("invalid_transition"), "{shown}");
    b.screenshot("8-refused").await;
    let events = s.get(&format!("/v1/instances/{id}/events")).await.body;
    assert_eq!(
        events["items"].as_array().map(Vec::len),
        Some(1),
        "nothing appended"
    );
}

#[tokio::test]
async fn a_project_member_sees_their_fleet_without_browser_errors() {
    crate::harness::Backend::Redb.enter();
    let s = Server::start(&["--driver-delay-ms", "0"]);
    let c = Catalog::create(&s).await;
    let mine = s.post("/v1/instances", c.instance("mine")).await.id();
    let theirs = json!({
        "name": "theirs", "project_id": c.project2, "flavor_id": c.flavor, "image_id": c.image
    });
    s.post("/v1/instances", theirs).await;
    let (_, token) = s.administrator("pat", &c.project).await;
    s.wait_for_state(&mine, "running").await;

    let b = Browser::start().await;
    b.goto(&format!("{}/", s.base)).await;
    b.keys("#token", &token).await;
    b.click("#signin").await;
    b.wait_text("#who", "Signed in as pat").await;
    let fleet = b.wait_text("#fleet-table tbody", "mine").await;
    assert!(
        !fleet.contains("theirs"),
        "another project's instance shown: {fleet}"
    );
    b.wait_text("#fleet-total", "1 match").await;
    b.goto(&format!("{}/#/instances/{mine}", s.base)).await;
    b.wait_text("#inst-actions", "Stop").await;
    b.goto(&format!("{}/#/audit", s.base)).await;
    b.click("#audit-form button").await;
    let audit = b.wait_text("#audit-table tbody", "Created").await;
    assert!(
        !audit.contains("CustomerCreated"),
        "catalog events are staff's: {audit}"
    );
    let errors = b.errors().await;
    assert!(errors.is_empty(), "browser console errors: {errors:#?}");
}
