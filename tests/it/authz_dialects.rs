//! The authorization matrix of the five vendor dialects, over the native matrix's world
//! (`authz`): every principal x every route of every dialect x an object of tenant A
//! (project A1, customer A) and one of tenant B (project B1), with the expected answer of
//! each cell written out in the dialect's own terms (its status, and its error code where
//! it has one). Each cell also shows what it appended: a write the principal may not make
//! appends nothing, a permitted one its events. Each answer about an object the principal
//! has no relation with is compared with the answer about an id that does not exist (same
//! status, headers and body but for the id), so no dialect confirms another tenant's
//! object. Each dialect's lists and counts show a tenant only its own instances, and each
//! matrix fails when its dialect serves a route it has no row for.

mod cloudmc;
mod launch_provision;
mod mogan;
mod nodeconductor;
mod wakame;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use crate::authz::{World, admin, world};
use crate::harness::{Resp, Server};

/// Column order of every expectation line.
pub(super) const WHO: [&str; 10] = [
    "staff",
    "owner_a",
    "admin_a1",
    "manager_a1",
    "admin_b1",
    "no_role",
    "agent",
    "revoked",
    "bad",
    "none",
];

/// Where each dialect's routes are, as `served_routes()` spells them.
const PREFIXES: [&str; 5] = [
    nodeconductor::PREFIX,
    mogan::PREFIX,
    launch_provision::PREFIX,
    wakame::PREFIX,
    cloudmc::PREFIX,
];

/// An object as the dialects name it: its uuid and, for instances, its `i-` id.
#[derive(Debug, Clone)]
pub(super) struct Obj {
    pub uuid: String,
    pub short: String,
}

impl Obj {
    pub fn hex(&self) -> String {
        self.uuid.replace('-', "")
    }
}

/// What no object is: the id every "another tenant's object" answer is compared with.
pub(super) fn unknown() -> Obj {
    Obj {
        uuid: "00000000-0000-4000-8000-00000000abcd".into(),
        short: "i-0000abcd".into(),
    }
}

/// An instance of the world and where it lives.
pub(super) struct Placed {
    pub obj: Obj,
    pub name: String,
    pub project: String,
    pub zone: Option<String>,
}

/// The native world, with what the dialects' rows also need.
pub(super) struct Tenants {
    pub w: World,
    pub network: String,
    /// Each user principal's own SSH key.
    pub keys: BTreeMap<&'static str, String>,
    /// Flavors restricted to A1 and to B1.
    pub flavors: [String; 2],
    /// Every instance, in creation order.
    pub instances: Vec<Placed>,
    /// A token of `no_role`'s with the wrong secret.
    bad_token: String,
}

/// Builds the world: the native matrix's, plus a key per user, a flavor only A1 may use
/// and one only B1 may, and an instance with an availability zone in A1 and in B1.
pub(super) async fn tenants() -> Tenants {
    let w = world().await;
    let s = &w.s;
    let network = s.get("/v1/networks").await.body["items"][0]["id"]
        .as_str()
        .expect("network")
        .to_string();
    let mut keys = BTreeMap::new();
    for (who, user) in &w.users {
        let body = json!({"name": format!("key-{who}"), "public_key": format!("ssh-ed25519 AAAAC3Nz {who}@laptop"), "user_id": user});
        let key = admin(s, Method::POST, "/v1/ssh-keys", Some(body)).await;
        keys.insert(*who, key["id"].as_str().expect("key").to_string());
    }
    let mut flavors = Vec::new();
    for (name, project) in [("a1.only", &w.a1), ("b1.only", &w.b1)] {
        let body = json!({"name": name, "vcpus": 1, "memory_mb": 512, "disk_gb": 5, "projects": [project]});
        let f = admin(s, Method::POST, "/v1/flavors", Some(body)).await;
        flavors.push(f["id"].as_str().expect("flavor").to_string());
    }
    let mut instances = Vec::new();
    for (name, project) in [("vm-A1", &w.a1), ("vm-A2", &w.a2), ("vm-B1", &w.b1)] {
        let id = &w.inst[&name[3..]];
        instances.push(placed(s, id, name, project, None).await);
    }
    for (zone, project) in [("zone-a1", &w.a1), ("zone-b1", &w.b1)] {
        let body = json!({"name": zone, "project_id": project, "flavor_id": w.flavor, "image_id": w.image, "availability_zone": zone});
        let id = admin(s, Method::POST, "/v1/instances", Some(body)).await["id"]
            .as_str()
            .expect("id")
            .to_string();
        s.wait_for_state(&id, "running").await;
        instances.push(placed(s, &id, zone, project, Some(zone)).await);
    }
    let real = w.tokens["no_role"].clone().expect("token");
    let (head, _) = real.rsplit_once('_').expect("lt_<id>_<secret>");
    Tenants {
        network,
        keys,
        flavors: [flavors[0].clone(), flavors[1].clone()],
        instances,
        bad_token: format!("{head}_{}", "0".repeat(64)),
        w,
    }
}

async fn placed(s: &Server, id: &str, name: &str, project: &str, zone: Option<&str>) -> Placed {
    let view = s.get(&format!("/v1/instances/{id}")).await.body;
    Placed {
        obj: Obj {
            uuid: id.to_string(),
            short: view["short_id"].as_str().expect("short id").to_string(),
        },
        name: name.to_string(),
        project: project.to_string(),
        zone: zone.map(str::to_string),
    }
}

/// What an object row names by `{id}`; each has an A side (line 0) and a B side (line 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    /// A collection, or a catalog entry every caller may read: one line.
    None,
    /// The running instances vm-A1 and vm-B1.
    Instance,
    /// A new running instance in A1 or B1 for each cell expected to succeed, so that a
    /// write that succeeds does not change what later cells meet; other cells meet
    /// vm-A1 and vm-B1.
    Fresh,
    Project,
    Customer,
    /// The flavors only A1, only B1 may use.
    Flavor,
    /// `admin_a1`'s and `admin_b1`'s SSH keys.
    Key,
    /// CloudMC's task of vm-A1's and vm-B1's last event.
    Task,
    /// The image every caller may read: one line.
    Image,
}

/// Which project `{environment}` names (CloudMC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Env {
    /// The object's project (collections: the caller's home project).
    Object,
    /// The caller's home project.
    Home,
}

pub(super) enum Body {
    None,
    Json(Value),
    Form(String),
}

/// One route with one request shape and its expected answers.
pub(super) struct Row {
    pub method: Method,
    /// The route as `served_routes()` spells it; `{uuid}`/`{id}` is the target, and
    /// `{environment}`, `{service}` and `{field}` are filled in.
    pub route: String,
    /// Appended to the path (a query string).
    pub query: String,
    pub body: Body,
    pub target: Target,
    pub env: Env,
    /// Whether a permitted request appends (the write succeeds).
    pub appends: bool,
    /// Per principal in [`WHO`] order: one line, or the A and B sides of the target.
    pub want: Vec<[u32; 10]>,
}

/// A row of a collection (or of something every caller reads), expected `want`.
pub(super) fn row(method: Method, route: impl Into<String>, want: [u32; 10]) -> Row {
    Row {
        method,
        route: route.into(),
        query: String::new(),
        body: Body::None,
        target: Target::None,
        env: Env::Object,
        appends: false,
        want: vec![want],
    }
}

/// A row about `target`, with the A side's and the B side's expectations.
pub(super) fn on(
    method: Method,
    route: impl Into<String>,
    target: Target,
    want: &[[u32; 10]; 2],
) -> Row {
    Row {
        target,
        want: want.to_vec(),
        ..row(method, route, want[0])
    }
}

impl Row {
    pub fn query(mut self, q: &str) -> Row {
        self.query = q.to_string();
        self
    }
    pub fn json(mut self, v: Value) -> Row {
        self.body = Body::Json(v);
        self
    }
    pub fn form(mut self, f: &str) -> Row {
        self.body = Body::Form(f.to_string());
        self
    }
    pub fn appends(mut self) -> Row {
        self.appends = true;
        self
    }
    /// A one-line row about something every caller may read.
    pub fn of(mut self, target: Target) -> Row {
        self.target = target;
        self
    }
    pub fn env(mut self, env: Env) -> Row {
        self.env = env;
        self
    }
}

/// Builds a request for `who` (method, path, token) as a dialect's clients send it.
pub(super) type Client = fn(&Tenants, &str, Method, &str, Option<&str>) -> RequestBuilder;

/// How a dialect's clients call it and how its answers are read.
pub(super) struct Dialect {
    /// Where its routes are in `served_routes()`.
    pub prefix: &'static str,
    /// A request as its clients send it: the token where they carry it (if any), and the
    /// caller's home tenancy where the dialect reads one from the request head.
    pub client: Client,
    /// How its paths spell an object.
    pub spell: fn(&Obj) -> String,
    /// What a cell's answer is compared as: the status, or the status and the dialect's
    /// error code (`404_100` is 404 with code 100).
    pub outcome: fn(&Resp) -> u32,
}

/// The status alone.
pub(super) fn status(r: &Resp) -> u32 {
    r.status.as_u16() as u32
}

/// The status, then the error code of a body carrying `code` (`digits` wide).
pub(super) fn status_and_code(r: &Resp, code: Option<&Value>, digits: u32) -> u32 {
    let status = status(r);
    let code = code.and_then(|c| c.as_u64().or_else(|| c.as_str()?.parse().ok()));
    match code {
        Some(c) if !r.status.is_success() => status * 10u32.pow(digits) + c as u32,
        _ => status,
    }
}

impl Tenants {
    pub fn s(&self) -> &Server {
        &self.w.s
    }

    pub fn token(&self, who: &str) -> Option<String> {
        match who {
            "bad" => Some(self.bad_token.clone()),
            _ => self.w.tokens.get(who).cloned().flatten(),
        }
    }

    /// The project a principal's client works in: B1 for `admin_b1`, A1 for the others.
    pub fn home(&self, who: &str) -> &str {
        if who == "admin_b1" {
            &self.w.b1
        } else {
            &self.w.a1
        }
    }

    pub fn home_customer(&self, who: &str) -> &str {
        if who == "admin_b1" {
            &self.w.customer_b
        } else {
            &self.w.customer_a
        }
    }

    pub fn side_project(&self, side: usize) -> &str {
        [&self.w.a1, &self.w.b1][side]
    }

    /// Whether `who` may read the instances of `project` (what lists may show it).
    pub fn sees(&self, who: &str, project: &str) -> bool {
        let w = &self.w;
        match who {
            "staff" | "agent" => true,
            "owner_a" => project == w.a1 || project == w.a2,
            "admin_a1" | "manager_a1" => project == w.a1,
            "admin_b1" => project == w.b1,
            _ => false,
        }
    }

    /// Whether `who` has any relation with the side's object of `target`: everyone else
    /// must not learn that it exists.
    fn related(&self, who: &str, target: Target, side: usize) -> bool {
        let tenant = match side {
            0 => ["staff", "owner_a", "admin_a1", "manager_a1"].contains(&who),
            _ => ["staff", "admin_b1"].contains(&who),
        };
        match target {
            Target::None | Target::Image => true,
            Target::Instance | Target::Fresh | Target::Task => tenant || who == "agent",
            Target::Project | Target::Customer | Target::Flavor => tenant,
            Target::Key => who == ["admin_a1", "admin_b1"][side],
        }
    }

    /// The uuids of the instances `who` may see, of those `keep` selects.
    pub fn visible(&self, who: &str, keep: impl Fn(&Placed) -> bool) -> BTreeSet<String> {
        self.instances
            .iter()
            .filter(|p| self.sees(who, &p.project) && keep(p))
            .map(|p| p.obj.uuid.clone())
            .collect()
    }

    async fn object(&self, target: Target, side: usize) -> Obj {
        let instance = |name: &str| {
            self.instances
                .iter()
                .find(|p| p.name == name)
                .expect("instance")
                .obj
                .clone()
        };
        let plain = |uuid: &str| Obj {
            uuid: uuid.to_string(),
            short: String::new(),
        };
        match target {
            Target::None => unknown(),
            Target::Image => plain(&self.w.image),
            Target::Instance | Target::Fresh => instance(["vm-A1", "vm-B1"][side]),
            Target::Project => plain(self.side_project(side)),
            Target::Customer => plain([&self.w.customer_a, &self.w.customer_b][side]),
            Target::Flavor => plain(&self.flavors[side]),
            Target::Key => plain(&self.keys[["admin_a1", "admin_b1"][side]]),
            Target::Task => {
                let obj = instance(["vm-A1", "vm-B1"][side]);
                plain(&task_of(self.s(), &obj.uuid).await)
            }
        }
    }

    /// The flavors `who` may use: the unrestricted ones, and those of A1 and B1 when it
    /// works in tenant A or B.
    pub async fn usable_flavors(&self, who: &str, a: bool, b: bool) -> BTreeSet<String> {
        let all = self.s().get("/v1/flavors?limit=1000").await.body;
        all["items"]
            .as_array()
            .expect("flavors")
            .iter()
            .map(|f| f["id"].as_str().expect("id").to_string())
            .filter(|f| {
                who == "staff" || (*f != self.flavors[0] || a) && (*f != self.flavors[1] || b)
            })
            .collect()
    }

    /// A new running instance in the side's project.
    pub async fn fresh(&self, side: usize) -> Obj {
        let w = &self.w;
        let body = json!({"name": "fresh", "project_id": self.side_project(side), "flavor_id": w.flavor, "image_id": w.image});
        let id = admin(self.s(), Method::POST, "/v1/instances", Some(body)).await["id"]
            .as_str()
            .expect("id")
            .to_string();
        self.s().wait_for_state(&id, "running").await;
        placed(self.s(), &id, "fresh", "", None).await.obj
    }

    /// What `{...}` names in paths and bodies, for `who`.
    fn vars(&self, who: &str) -> Vec<(&'static str, String)> {
        let w = &self.w;
        let hex = |s: &str| s.replace('-', "");
        let key = self
            .keys
            .get(who)
            .cloned()
            .unwrap_or_else(|| unknown().uuid);
        vec![
            ("{who}", who.replace('_', "-")),
            ("{home}", self.home(who).to_string()),
            ("{a1}", w.a1.clone()),
            ("{key}", key),
            ("{flavor}", w.flavor.clone()),
            ("{flavor_hex}", hex(&w.flavor)),
            ("{image}", w.image.clone()),
            ("{image_hex}", hex(&w.image)),
            ("{network}", self.network.clone()),
        ]
    }
}

/// The CloudMC task of an instance's last event, as the dialect derives task ids.
async fn task_of(s: &Server, uuid: &str) -> String {
    let timeline = s.get(&format!("/v1/instances/{uuid}/events")).await.body;
    let last = timeline["items"]
        .as_array()
        .and_then(|items| items.last())
        .and_then(|e| e["position"].as_u64())
        .expect("a timeline");
    let stream = uuid::Uuid::parse_str(uuid).expect("uuid");
    instance_ledger::api::cloudmc::tasks::task_id(last, stream).to_string()
}

/// Waits until the driver has completed every transition, so the next cell's count of
/// appended events is its own.
async fn settle(s: &Server) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = s.get("/v1/instances?limit=1000").await;
        let busy: Vec<&Value> = r.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|i| {
                let state = i["state"].as_str().unwrap_or_default();
                [
                    "provisioning",
                    "starting",
                    "stopping",
                    "rebooting",
                    "resizing",
                    "deleting",
                ]
                .contains(&state)
            })
            .collect();
        if busy.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "never settled: {busy:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Headers that say how one exchange went, not what the answer is (a refusal sent before
/// the body was read closes the connection).
const TRANSPORT: [&str; 5] = [
    "date",
    "content-length",
    "connection",
    "x-request-id",
    "openstack-request-id",
];

/// An answer with the id its request named blanked out: what must not differ between
/// another tenant's object and none at all. Only the id as the request spelled it is
/// blanked, so an answer that names the object in another form still differs.
fn shape(r: &Resp, id: &str) -> String {
    let body = match &r.body {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let headers: BTreeSet<&str> = r
        .headers
        .keys()
        .map(|k| k.as_str())
        .filter(|k| !TRANSPORT.contains(k))
        .collect();
    format!(
        "{} {:?} {headers:?} {}",
        r.status,
        r.header("content-type"),
        body.replace(id, "{id}")
    )
}

/// Runs rows of one dialect and collects what differs.
pub(super) struct Matrix<'t> {
    t: &'t Tenants,
    d: Dialect,
    covered: BTreeSet<(String, String)>,
    failures: Vec<String>,
}

impl<'t> Matrix<'t> {
    pub fn new(t: &'t Tenants, d: Dialect) -> Matrix<'t> {
        Matrix {
            t,
            d,
            covered: BTreeSet::new(),
            failures: Vec::new(),
        }
    }

    fn path(&self, row: &Row, who: &str, side: usize, obj: &Obj) -> String {
        let env = match (row.target, row.env) {
            (Target::None, _) | (_, Env::Home) => self.t.home(who),
            (_, Env::Object) => self.t.side_project(side),
        };
        let id = (self.d.spell)(obj);
        let path = row
            .route
            .replace("{uuid}", &id)
            .replace("{id}", &id)
            .replace("{environment}", env)
            .replace("{service}", "compute-on")
            .replace("{field}", "instance_type");
        self.fill(who, format!("{path}{}", row.query))
    }

    fn fill(&self, who: &str, mut text: String) -> String {
        for (k, v) in self.t.vars(who) {
            text = text.replace(k, &v);
        }
        text
    }

    pub async fn send(&self, who: &str, method: Method, path: &str, body: &Body) -> Resp {
        let token = self.t.token(who);
        let req = (self.d.client)(self.t, who, method, path, token.as_deref());
        let req = match body {
            Body::None => req,
            Body::Json(v) => req
                .header("Content-Type", "application/json")
                .body(self.fill(who, v.to_string())),
            Body::Form(f) => req
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(self.fill(who, f.clone())),
        };
        Server::send(req).await
    }

    pub async fn run(&mut self, rows: Vec<Row>) {
        for row in &rows {
            self.covered
                .insert((row.method.to_string(), row.route.clone()));
            for (side, line) in row.want.iter().enumerate() {
                for (col, who) in WHO.iter().enumerate() {
                    self.cell(row, side, who, line[col]).await;
                }
            }
        }
    }

    async fn cell(&mut self, row: &Row, side: usize, who: &str, want: u32) {
        let s = self.t.s();
        let succeeds = (200..300).contains(&want);
        let obj = match row.target {
            Target::Fresh if succeeds => self.t.fresh(side).await,
            target => self.t.object(target, side).await,
        };
        let path = self.path(row, who, side, &obj);
        let before = s.position().await;
        let r = self.send(who, row.method.clone(), &path, &row.body).await;
        let appended = s.position().await - before;
        let got = (self.d.outcome)(&r);
        let at = format!(
            "{} {} [{}] as {who}",
            row.method,
            row.route,
            ["A", "B"][side]
        );
        if got != want {
            self.failures
                .push(format!("{at}: {got} (want {want}) {}", r.body));
        }
        // Judged by what the cell should answer, so a write granted by mistake counts too.
        if (row.appends && succeeds) != (appended > 0) {
            self.failures
                .push(format!("{at}: appended {appended} events ({})", r.status));
        }
        if appended > 0 {
            settle(s).await;
        }
        if self.t.related(who, row.target, side) {
            return;
        }
        let none = unknown();
        let other = self.path(row, who, side, &none);
        let before = s.position().await;
        let u = self.send(who, row.method.clone(), &other, &row.body).await;
        if s.position().await != before {
            self.failures.push(format!("{at}: an unknown id appended"));
        }
        let spell = self.d.spell;
        let (theirs, nothing) = (shape(&r, &spell(&obj)), shape(&u, &spell(&none)));
        if theirs != nothing {
            self.failures.push(format!(
                "{at}: another tenant's object is not answered as an unknown one:\n  {theirs}\n  {nothing}"
            ));
        }
    }

    /// Fails with every cell that differed, and when the dialect serves a route no row
    /// covered.
    pub fn finish(self) {
        let served = dialect_routes(self.d.prefix);
        let missing: Vec<_> = served.difference(&self.covered).collect();
        let extra: Vec<_> = self.covered.difference(&served).collect();
        assert!(
            self.failures.is_empty(),
            "{} cells differ:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
        assert!(missing.is_empty(), "routes without a row: {missing:?}");
        assert!(extra.is_empty(), "rows of routes not served: {extra:?}");
    }
}

/// The (method, route) pairs the server serves under `prefix`.
fn dialect_routes(prefix: &str) -> BTreeSet<(String, String)> {
    instance_ledger::api::openapi::served_routes()
        .into_iter()
        .filter(|(_, path)| path.starts_with(prefix))
        .map(|(m, path)| (m.to_string(), path))
        .collect()
}

#[test]
fn every_route_outside_the_native_api_belongs_to_a_dialect_matrix() {
    let native: BTreeSet<String> = instance_ledger::api::native::routes::table()
        .into_iter()
        .map(|r| r.path.to_string())
        .collect();
    let orphans: Vec<_> = instance_ledger::api::openapi::served_routes()
        .into_iter()
        .filter(|(_, path)| !native.contains(path))
        .filter(|(_, path)| !PREFIXES.iter().any(|p| path.starts_with(p)))
        .collect();
    assert!(
        orphans.is_empty(),
        "routes no dialect matrix covers: {orphans:?}"
    );
}
