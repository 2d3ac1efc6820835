//! The authorization matrix: every principal x every `/v1` route x instances in projects
//! A1, A2 (customer A) and B1 (customer B), with the expected status of each cell written
//! out; then lists, totals, cursors, timelines and the feed are checked for leaks, and
//! grants and revocations are shown to take effect on the next request.

use std::collections::{BTreeMap, BTreeSet};

use crate::harness::{Catalog, Server};
use instance_ledger::api::native::routes;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Column order of every expectation row.
const PRINCIPALS: [&str; 10] = [
    "staff",
    "owner_a",
    "owner_b",
    "admin_a1",
    "manager_a1",
    "admin_b1",
    "no_role",
    "agent",
    "revoked",
    "none",
];

/// The principals, tenants and instances of the matrix; the dialects' matrix
/// (`authz_dialects`) runs over the same world.
pub(crate) struct World {
    pub(crate) s: Server,
    pub(crate) tokens: BTreeMap<&'static str, Option<String>>,
    pub(crate) users: BTreeMap<&'static str, String>,
    pub(crate) customer_a: String,
    pub(crate) customer_b: String,
    pub(crate) a1: String,
    pub(crate) a2: String,
    pub(crate) b1: String,
    /// Instances by project name.
    pub(crate) inst: BTreeMap<&'static str, String>,
    pub(crate) flavor: String,
    pub(crate) image: String,
    pub(crate) bystander: String,
    pub(crate) spare_token: String,
}

pub(crate) async fn admin(s: &Server, method: Method, path: &str, body: Option<Value>) -> Value {
    let r = s.call(method.clone(), path, body).await;
    assert!(
        r.status.is_success(),
        "{method} {path}: {} {}",
        r.status,
        r.body
    );
    r.body
}

async fn user(s: &Server, name: &str, staff: bool, agent: bool) -> (String, String) {
    let u = admin(s, Method::POST, "/v1/users", Some(json!({"username": name, "email": format!("{name}@example.com"), "is_staff": staff, "agent": agent}))).await;
    let id = u["id"].as_str().expect("id").to_string();
    let t = admin(
        s,
        Method::POST,
        &format!("/v1/users/{id}/tokens"),
        Some(json!({"name": "matrix"})),
    )
    .await;
    (id, t["token"].as_str().expect("token").to_string())
}

/// Customers A (projects A1, A2) and B (project B1), a running instance in each project,
/// and a principal per column of [`PRINCIPALS`].
pub(crate) async fn world() -> World {
    let s = Server::start(&["--driver-delay-ms", "0"]);
    let c = Catalog::create(&s).await;
    let customer_a = c.customer.clone();
    let a1 = c.project.clone();
    let a2 = c.project2.clone();
    let customer_b = admin(
        &s,
        Method::POST,
        "/v1/customers",
        Some(json!({"name": "beta"})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b1 = admin(
        &s,
        Method::POST,
        "/v1/projects",
        Some(json!({"name": "b1", "customer_id": customer_b})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut tokens = BTreeMap::new();
    let mut users = BTreeMap::new();
    for (name, staff, agent) in [
        ("staff", true, false),
        ("owner_a", false, false),
        ("owner_b", false, false),
        ("admin_a1", false, false),
        ("manager_a1", false, false),
        ("admin_b1", false, false),
        ("no_role", false, false),
        ("agent", false, true),
        ("revoked", false, false),
    ] {
        let (id, token) = user(&s, &name.replace('_', "-"), staff, agent).await;
        users.insert(name, id);
        tokens.insert(name, Some(token));
    }
    tokens.insert("none", None);
    let (bystander, _) = user(&s, "bystander", false, false).await;
    let grant = |path: String, body: Value| {
        let s = &s;
        async move { admin(s, Method::POST, &path, Some(body)).await }
    };
    grant(
        format!("/v1/customers/{customer_a}/owners"),
        json!({"user_id": users["owner_a"]}),
    )
    .await;
    grant(
        format!("/v1/customers/{customer_b}/owners"),
        json!({"user_id": users["owner_b"]}),
    )
    .await;
    grant(
        format!("/v1/projects/{a1}/members"),
        json!({"user_id": users["admin_a1"], "role": "administrator"}),
    )
    .await;
    grant(
        format!("/v1/projects/{a1}/members"),
        json!({"user_id": users["manager_a1"], "role": "manager"}),
    )
    .await;
    grant(
        format!("/v1/projects/{b1}/members"),
        json!({"user_id": users["admin_b1"], "role": "administrator"}),
    )
    .await;
    // The revoked principal had rights on everything of A, then lost its token.
    grant(
        format!("/v1/customers/{customer_a}/owners"),
        json!({"user_id": users["revoked"]}),
    )
    .await;
    let me = s
        .client
        .get(format!("{}/v1/me", s.base))
        .bearer_auth(tokens["revoked"].clone().unwrap())
        .send()
        .await
        .unwrap();
    let token_id = me.json::<Value>().await.unwrap()["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .call(Method::DELETE, &format!("/v1/tokens/{token_id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let spare = admin(
        &s,
        Method::POST,
        &format!("/v1/users/{}/tokens", users["no_role"]),
        Some(json!({})),
    )
    .await;

    let mut inst = BTreeMap::new();
    for (name, project) in [("A1", &a1), ("A2", &a2), ("B1", &b1)] {
        let mut body = c.instance(&format!("vm-{name}"));
        body["project_id"] = json!(project);
        let id = admin(&s, Method::POST, "/v1/instances", Some(body)).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        s.wait_for_state(&id, "running").await;
        inst.insert(name, id);
    }
    World {
        tokens,
        users,
        customer_a,
        customer_b,
        a1,
        a2,
        b1,
        inst,
        flavor: c.flavor.clone(),
        image: c.image.clone(),
        bystander,
        spare_token: spare["id"].as_str().unwrap().to_string(),
        s,
    }
}

impl World {
    async fn send(
        &self,
        who: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = self
            .s
            .client
            .request(method, format!("{}{}", self.s.base, path));
        if let Some(Some(t)) = self.tokens.get(who) {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status();
        // The live feed never ends: its status is the answer.
        if path.starts_with("/v1/events/stream") && status.is_success() {
            return (status, Value::Null);
        }
        let body = r.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn ids(&self, who: &str, path: &str) -> (BTreeSet<String>, u64) {
        let (status, body) = self.send(who, Method::GET, path, None, &[]).await;
        assert_eq!(status, StatusCode::OK, "{who} {path}: {body}");
        let ids = body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        (ids, body["total"].as_u64().expect("total"))
    }
}

fn set(items: &[&String]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

on_each_backend!(#[tokio::test] async fn authorization_matrix_and_no_leaks);
async fn authorization_matrix_and_no_leaks() {
    let w = world().await;
    let (ia1, ia2, ib1) = (&w.inst["A1"], &w.inst["A2"], &w.inst["B1"]);

    // ---- leaks: lists, totals, cursors, filters, timelines, the feed ----
    let visible: BTreeMap<&str, BTreeSet<String>> = BTreeMap::from([
        ("staff", set(&[ia1, ia2, ib1])),
        ("owner_a", set(&[ia1, ia2])),
        ("owner_b", set(&[ib1])),
        ("admin_a1", set(&[ia1])),
        ("manager_a1", set(&[ia1])),
        ("admin_b1", set(&[ib1])),
        ("no_role", set(&[])),
        ("agent", set(&[ia1, ia2, ib1])),
    ]);
    for (who, expected) in &visible {
        for query in [
            "",
            "?state=running",
            "?limit=1000&name=vm-A1",
            "?security_group=nope",
        ] {
            let (ids, total) = w.ids(who, &format!("/v1/instances{query}")).await;
            let want: BTreeSet<String> = expected
                .iter()
                .filter(|id| match query {
                    "?limit=1000&name=vm-A1" => *id == ia1,
                    "?security_group=nope" => false,
                    _ => true,
                })
                .cloned()
                .collect();
            assert_eq!(ids, want, "{who} lists {query}");
            assert_eq!(total, want.len() as u64, "{who} total {query}");
        }
        // Paging one at a time through the cursor sees the same, each once.
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                None => "/v1/instances?limit=1".to_string(),
                Some(c) => format!("/v1/instances?limit=1&cursor={c}"),
            };
            let (_, body) = w.send(who, Method::GET, &path, None, &[]).await;
            seen.extend(
                body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["id"].as_str().unwrap().to_string()),
            );
            assert_eq!(
                body["total"].as_u64(),
                Some(expected.len() as u64),
                "{who} paged total"
            );
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(seen.len(), expected.len(), "{who}: {seen:?}");
        assert_eq!(
            seen.iter().cloned().collect::<BTreeSet<_>>(),
            *expected,
            "{who} paged"
        );

        // The past is bounded the same way: as-of lists and the changes in a window.
        let head = w.s.position().await;
        let (ids, total) = w
            .ids(who, &format!("/v1/instances?at_position={head}"))
            .await;
        assert_eq!(
            (&ids, total),
            (expected, expected.len() as u64),
            "{who} as-of list"
        );
        let (_, changes) = w
            .send(
                who,
                Method::GET,
                "/v1/changes?since=0&limit=1000",
                None,
                &[],
            )
            .await;
        let changed: BTreeSet<String> = changes["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(&changed, expected, "{who} changes");
        for id in [ia1, ia2, ib1] {
            let (status, _) = w
                .send(
                    who,
                    Method::GET,
                    &format!("/v1/instances/{id}/events"),
                    None,
                    &[],
                )
                .await;
            let want = if expected.contains(id) {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            assert_eq!(status, want, "{who} timeline of {id}");
        }
        let (status, feed) = w
            .send(who, Method::GET, "/v1/events?limit=1000", None, &[])
            .await;
        assert_eq!(status, StatusCode::OK);
        let streams: BTreeSet<String> = feed["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["stream_id"].as_str().unwrap().to_string())
            .collect();
        if *who == "staff" {
            assert!(streams.is_superset(expected));
            assert!(
                feed["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["type"] == "ProjectMemberAdded"),
                "grants are events"
            );
        } else {
            assert_eq!(
                streams, *expected,
                "{who} sees exactly its instances' events in the feed"
            );
        }
    }
    let names = |ids: &[&String]| set(ids);
    for (who, customers, projects) in [
        ("owner_a", names(&[&w.customer_a]), names(&[&w.a1, &w.a2])),
        ("admin_a1", names(&[&w.customer_a]), names(&[&w.a1])),
        ("admin_b1", names(&[&w.customer_b]), names(&[&w.b1])),
        ("no_role", names(&[]), names(&[])),
    ] {
        assert_eq!(
            w.ids(who, "/v1/customers").await,
            (customers.clone(), customers.len() as u64),
            "{who} customers"
        );
        assert_eq!(
            w.ids(who, "/v1/projects").await,
            (projects.clone(), projects.len() as u64),
            "{who} projects"
        );
    }

    // ---- the matrix ----
    // Columns: staff owner_a owner_b admin_a1 manager_a1 admin_b1 no_role agent revoked none.
    // Instance rows use a stale If-Match ("0"), so a permitted mutation answers 412 and
    // changes nothing; a refused one answers 403 or 404 before the version is looked at.
    const READ: [[u16; 10]; 3] = [
        [200, 200, 404, 200, 200, 404, 404, 200, 401, 401], // A1
        [200, 200, 404, 404, 404, 404, 404, 200, 401, 401], // A2
        [200, 404, 200, 404, 404, 200, 404, 200, 401, 401], // B1
    ];
    const OPERATE: [[u16; 10]; 3] = [
        [412, 412, 404, 412, 403, 404, 404, 403, 401, 401],
        [412, 412, 404, 404, 404, 404, 404, 403, 401, 401],
        [412, 404, 412, 404, 404, 412, 404, 403, 401, 401],
    ];
    const COMPLETE: [[u16; 10]; 3] = [
        [412, 403, 404, 403, 403, 404, 404, 412, 401, 401],
        [412, 403, 404, 404, 404, 404, 404, 412, 401, 401],
        [412, 404, 403, 404, 404, 403, 404, 412, 401, 401],
    ];
    let stale = [("If-Match", "\"0\"")];
    let flavor = json!({"flavor_id": w.flavor});
    type InstanceRow<'a> = (Method, &'a str, Option<Value>, &'a [[u16; 10]; 3]);
    let instance_rows: Vec<InstanceRow> = vec![
        (Method::GET, "/v1/instances/{id}", None, &READ),
        (Method::GET, "/v1/instances/{id}/power", None, &READ),
        (Method::GET, "/v1/instances/{id}/events", None, &READ),
        (Method::GET, "/v1/instances/{id}/operations", None, &READ),
        (Method::GET, "/v1/instances/{id}/diff?from=0", None, &READ),
        (
            Method::PATCH,
            "/v1/instances/{id}",
            Some(json!({"name": "renamed"})),
            &OPERATE,
        ),
        (Method::DELETE, "/v1/instances/{id}", None, &OPERATE),
        (Method::POST, "/v1/instances/{id}/start", None, &OPERATE),
        (Method::POST, "/v1/instances/{id}/stop", None, &OPERATE),
        (Method::POST, "/v1/instances/{id}/reboot", None, &OPERATE),
        (
            Method::POST,
            "/v1/instances/{id}/resize",
            Some(flavor.clone()),
            &OPERATE,
        ),
        (Method::POST, "/v1/instances/{id}/recover", None, &OPERATE),
        (Method::POST, "/v1/instances/{id}/purge", None, &OPERATE),
        (Method::POST, "/v1/instances/{id}/lock", None, &OPERATE),
        (Method::POST, "/v1/instances/{id}/unlock", None, &OPERATE),
        (
            Method::PUT,
            "/v1/instances/{id}/power",
            Some(json!({"target": "on"})),
            &OPERATE,
        ),
        (Method::POST, "/v1/instances/{id}/complete", None, &COMPLETE),
        (
            Method::POST,
            "/v1/instances/{id}/fail",
            Some(json!({"reason": "x"})),
            &COMPLETE,
        ),
    ];
    let mut covered: BTreeSet<(String, String)> = BTreeSet::new();
    let mut failures = Vec::new();
    for (method, template, body, table) in &instance_rows {
        let route = template.split('?').next().unwrap_or(template);
        covered.insert((method.to_string(), route.to_string()));
        for (row, id) in [ia1, ia2, ib1].into_iter().enumerate() {
            for (col, who) in PRINCIPALS.iter().enumerate() {
                let path = template.replace("{id}", id);
                let (status, resp) = w
                    .send(who, method.clone(), &path, body.clone(), &stale)
                    .await;
                if status.as_u16() != table[row][col] {
                    failures.push(format!(
                        "{method} {template} [{}] as {who}: {} (want {}) {resp}",
                        ["A1", "A2", "B1"][row],
                        status.as_u16(),
                        table[row][col]
                    ));
                }
            }
        }
    }
    let before_state: Vec<Value> = {
        let mut v = Vec::new();
        for id in [ia1, ia2, ib1] {
            v.push(w.s.get(&format!("/v1/instances/{id}")).await.body);
        }
        v
    };

    let u = |k: &str| w.users[k].clone();
    let a1_instance =
        json!({"name": "made", "project_id": w.a1, "flavor_id": w.flavor, "image_id": w.image});
    let member = json!({"user_id": w.bystander, "role": "manager"});
    let owner = json!({"user_id": w.bystander});
    type Row = (Method, String, &'static str, Option<Value>, [u16; 10]);
    let rows: Vec<Row> = vec![
        (
            Method::GET,
            "/v1/instances".into(),
            "/v1/instances",
            None,
            [200, 200, 200, 200, 200, 200, 200, 200, 401, 401],
        ),
        (
            Method::POST,
            "/v1/instances".into(),
            "/v1/instances",
            Some(a1_instance),
            [201, 201, 422, 201, 403, 422, 422, 422, 401, 401],
        ),
        (
            Method::GET,
            "/v1/events".into(),
            "/v1/events",
            None,
            [200, 200, 200, 200, 200, 200, 200, 200, 401, 401],
        ),
        (
            Method::GET,
            "/v1/ledger/head".into(),
            "/v1/ledger/head",
            None,
            [200, 403, 403, 403, 403, 403, 403, 403, 401, 401],
        ),
        (
            Method::GET,
            "/v1/me".into(),
            "/v1/me",
            None,
            [200, 200, 200, 200, 200, 200, 200, 200, 401, 401],
        ),
        (
            Method::POST,
            "/v1/users".into(),
            "/v1/users",
            Some(json!({"username": "u-{who}", "email": "u@example.com"})),
            [201, 403, 403, 403, 403, 403, 403, 403, 401, 401],
        ),
        (
            Method::GET,
            "/v1/users".into(),
            "/v1/users",
            None,
            [200, 403, 403, 403, 403, 403, 403, 403, 401, 401],
        ),
        (
            Method::GET,
            format!("/v1/users/{}", u("no_role")),
            "/v1/users/{id}",
            None,
            [200, 404, 404, 404, 404, 404, 200, 404, 401, 401],
        ),
        (
            Method::POST,
            format!("/v1/users/{}/tokens", u("no_role")),
            "/v1/users/{id}/tokens",
            None,
            [201, 404, 404, 404, 404, 404, 201, 404, 401, 401],
        ),
        (
            Method::GET,
            format!("/v1/users/{}/tokens", u("no_role")),
            "/v1/users/{id}/tokens",
            None,
            [200, 404, 404, 404, 404, 404, 200, 404, 401, 401],
        ),
        (
            Method::DELETE,
            format!("/v1/tokens/{}", w.spare_token),
            "/v1/tokens/{id}",
            None,
            [204, 404, 404, 404, 404, 404, 204, 404, 401, 401],
        ),
        (
            Method::GET,
            format!("/v1/customers/{}/owners", w.customer_a),
            "/v1/customers/{id}/owners",
            None,
            [200, 200, 404, 200, 200, 404, 404, 404, 401, 401],
        ),
        (
            Method::POST,
            format!("/v1/customers/{}/owners", w.customer_a),
            "/v1/customers/{id}/owners",
            Some(owner.clone()),
            [200, 403, 404, 403, 403, 404, 404, 404, 401, 401],
        ),
        (
            Method::DELETE,
            format!("/v1/customers/{}/owners", w.customer_a),
            "/v1/customers/{id}/owners",
            Some(owner.clone()),
            [200, 403, 404, 403, 403, 404, 404, 404, 401, 401],
        ),
        (
            Method::GET,
            format!("/v1/projects/{}/members", w.a1),
            "/v1/projects/{id}/members",
            None,
            [200, 200, 404, 200, 200, 404, 404, 404, 401, 401],
        ),
        (
            Method::POST,
            format!("/v1/projects/{}/members", w.a1),
            "/v1/projects/{id}/members",
            Some(member.clone()),
            [200, 200, 404, 403, 403, 404, 404, 404, 401, 401],
        ),
        (
            Method::DELETE,
            format!("/v1/projects/{}/members", w.a1),
            "/v1/projects/{id}/members",
            Some(member.clone()),
            [200, 200, 404, 403, 403, 404, 404, 404, 401, 401],
        ),
        (
            Method::POST,
            "/v1/customers".into(),
            "/v1/customers",
            Some(json!({"name": "new"})),
            [201, 403, 403, 403, 403, 403, 403, 403, 401, 401],
        ),
        (
            Method::GET,
            "/v1/customers".into(),
            "/v1/customers",
            None,
            [200, 200, 200, 200, 200, 200, 200, 200, 401, 401],
        ),
        (
            Method::GET,
            format!("/v1/customers/{}", w.customer_a),
            "/v1/customers/{id}",
            None,
            [200, 200, 404, 200, 200, 404, 404, 404, 401, 401],
        ),
        (
            Method::POST,
            "/v1/projects".into(),
            "/v1/projects",
            Some(json!({"name": "p", "customer_id": w.customer_a})),
            [201, 201, 422, 403, 403, 422, 422, 422, 401, 401],
        ),
        (
            Method::GET,
            "/v1/projects".into(),
            "/v1/projects",
            None,
            [200, 200, 200, 200, 200, 200, 200, 200, 401, 401],
        ),
        (
            Method::GET,
            format!("/v1/projects/{}", w.a1),
            "/v1/projects/{id}",
            None,
            [200, 200, 404, 200, 200, 404, 404, 404, 401, 401],
        ),
        (
            Method::POST,
            "/v1/flavors".into(),
            "/v1/flavors",
            Some(json!({"name": "f", "vcpus": 1, "memory_mb": 1, "disk_gb": 1})),
            [201, 403, 403, 403, 403, 403, 403, 403, 401, 401],
        ),
        (
            Method::GET,
            "/v1/flavors".into(),
            "/v1/flavors",
            None,
            [200, 200, 200, 200, 200, 200, 200, 200, 401, 401],
        ),
        (
            Method::GET,
            format!("/v1/flavors/{}", w.flavor),
            "/v1/flavors/{id}",
            None,
            [200, 200, 200, 200, 200, 200, 200, 200, 401, 401],
        ),
        (
            Method::POST,
            "/v1/images".into(),
            "/v1/images",
            Some(json!({"name": "i"})),
            [201, 403, 403, 403, 403, 403, 403, 403, 401, 401],
        ),
        (
            Method::GET,
            "/v1/images".into(),
            "/v1/images",
            None,
            [200, 200, 200, 200, 200, 200, 200, 200, 401, 401],
        ),
        (
            Method::GET,
            format!("/v1/images/{}", w.image),
            "/v1/images/{id}",
            None,
            [200, 200, 200, 200, 200, 200, 200, 200, 401, 401],
        ),
        (
            Method::POST,
            "/v1/isos".into(),
            "/v1/isos",
            Some(json!({"name": "tools.iso"})),
            [201, 403, 403, 403, 403, 403, 403, 403, 401, 401],
        ),
        (
            Method::GET,
            "/v1/isos".into(),
            "/v1/isos",
            None,
            [200, 200, 200, 200, 200, 200, 200, 200, 401, 401],
        ),
        (
            Method::GET,
            format!("/v1/isos/{}", w.image),
            "/v1/isos/{id}",
            None,
            [404, 404, 404, 404, 404, 404, 404, 404, 401, 401],
        ),
        (
            Method::POST,
            "/v1/networks".into(),
            "/v1/networks",
            Some(json!({"name": "n", "cidr": "10.1.0.0/16"})),
            [201, 403, 403, 403, 403, 403, 403, 403, 401, 401],
        ),
        (
            Method::GET,
            "/v1/networks".into(),
            "/v1/networks",
            None,
            [200, 200, 200, 200, 200, 200, 200, 200, 401, 401],
        ),
        (
            Method::POST,
            "/v1/ssh-keys".into(),
            "/v1/ssh-keys",
            Some(json!({"name": "k", "public_key": "ssh-ed25519 AAAA k@x"})),
            [201, 403, 403, 403, 403, 403, 403, 403, 401, 401],
        ),
        (
            Method::GET,
            "/v1/ssh-keys".into(),
            "/v1/ssh-keys",
            None,
            [200, 200, 200, 200, 200, 200, 200, 200, 401, 401],
        ),
        (
            Method::POST,
            "/v1/security-groups".into(),
            "/v1/security-groups",
            Some(
                json!({"name": "sg", "protocol": "tcp", "from_port": 22, "to_port": 22, "ip_range": "0.0.0.0/0"}),
            ),
            [201, 403, 403, 403, 403, 403, 403, 403, 401, 401],
        ),
        (
            Method::GET,
            "/v1/security-groups".into(),
            "/v1/security-groups",
            None,
            [200, 200, 200, 200, 200, 200, 200, 200, 401, 401],
        ),
    ];
    let network = w.s.get("/v1/networks").await.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let key = w.s.get("/v1/ssh-keys").await.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let group = admin(
        &w.s,
        Method::POST,
        "/v1/security-groups",
        Some(json!({"name": "web", "protocol": "tcp", "from_port": 80, "to_port": 80, "ip_range": "0.0.0.0/0"})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut rows = rows;
    let everyone = [200, 200, 200, 200, 200, 200, 200, 200, 401, 401];
    let staff_only = [200, 403, 403, 403, 403, 403, 403, 403, 401, 401];
    rows.push((
        Method::GET,
        "/v1/events/stream".into(),
        "/v1/events/stream",
        None,
        everyone,
    ));
    rows.push((
        Method::GET,
        "/v1/changes?since=0".into(),
        "/v1/changes",
        None,
        everyone,
    ));
    rows.push((
        Method::GET,
        "/v1/ledger/digest".into(),
        "/v1/ledger/digest",
        None,
        staff_only,
    ));
    rows.push((
        Method::GET,
        format!("/v1/networks/{network}"),
        "/v1/networks/{id}",
        None,
        [200, 200, 200, 200, 200, 200, 200, 200, 401, 401],
    ));
    rows.push((
        Method::GET,
        format!("/v1/ssh-keys/{key}"),
        "/v1/ssh-keys/{id}",
        None,
        [200, 200, 200, 200, 200, 200, 200, 200, 401, 401],
    ));
    rows.push((
        Method::GET,
        format!("/v1/security-groups/{group}"),
        "/v1/security-groups/{id}",
        None,
        [200, 200, 200, 200, 200, 200, 200, 200, 401, 401],
    ));
    for (method, path, template, body, want) in &rows {
        covered.insert((method.to_string(), template.to_string()));
        for (col, who) in PRINCIPALS.iter().enumerate() {
            // Grant removals need the grant in place for each permitted caller.
            if *method == Method::DELETE && template.ends_with("/owners") {
                admin(&w.s, Method::POST, path, Some(owner.clone())).await;
            }
            if *method == Method::DELETE && template.ends_with("/members") {
                admin(&w.s, Method::POST, path, Some(member.clone())).await;
            }
            let body = body.as_ref().map(|b| {
                serde_json::from_str::<Value>(
                    &b.to_string().replace("{who}", &who.replace('_', "-")),
                )
                .unwrap()
            });
            let (status, resp) = w.send(who, method.clone(), path, body, &[]).await;
            if status.as_u16() != want[col] {
                failures.push(format!(
                    "{method} {template} as {who}: {} (want {}) {resp}",
                    status.as_u16(),
                    want[col]
                ));
            }
            if status == StatusCode::UNAUTHORIZED {
                assert!(resp["code"] == "unauthorized", "{resp}");
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Every /v1 route of the server is in the matrix.
    let all: BTreeSet<(String, String)> = routes::table()
        .iter()
        .filter(|r| r.path.starts_with("/v1/"))
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let missing: Vec<_> = all.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the matrix: {missing:?}"
    );

    // The refused and stale mutations changed nothing.
    for (i, id) in [ia1, ia2, ib1].into_iter().enumerate() {
        assert_eq!(
            w.s.get(&format!("/v1/instances/{id}")).await.body,
            before_state[i]
        );
    }
}

on_each_backend!(#[tokio::test] async fn grants_and_revocations_take_effect_on_the_next_request);
async fn grants_and_revocations_take_effect_on_the_next_request() {
    let w = world().await;
    let ia2 = &w.inst["A2"];
    let who = "no_role";
    let path = format!("/v1/instances/{ia2}");
    assert_eq!(
        w.send(who, Method::GET, &path, None, &[]).await.0,
        StatusCode::NOT_FOUND
    );

    let member = json!({"user_id": w.users[who], "role": "manager"});
    admin(
        &w.s,
        Method::POST,
        &format!("/v1/projects/{}/members", w.a2),
        Some(member.clone()),
    )
    .await;
    assert_eq!(
        w.send(who, Method::GET, &path, None, &[]).await.0,
        StatusCode::OK
    );
    assert_eq!(w.ids(who, "/v1/instances").await.0, set(&[ia2]));
    // A manager may look, not touch.
    assert_eq!(
        w.send(who, Method::POST, &format!("{path}/stop"), None, &[])
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    let upgrade = json!({"user_id": w.users[who], "role": "administrator"});
    admin(
        &w.s,
        Method::POST,
        &format!("/v1/projects/{}/members", w.a2),
        Some(upgrade),
    )
    .await;
    let (status, stopped) = w
        .send(who, Method::POST, &format!("{path}/stop"), None, &[])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{stopped}");

    admin(
        &w.s,
        Method::DELETE,
        &format!("/v1/projects/{}/members", w.a2),
        Some(member),
    )
    .await;
    assert_eq!(
        w.send(who, Method::GET, &path, None, &[]).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(w.ids(who, "/v1/instances").await, (BTreeSet::new(), 0));

    // The stop is on record with the user and the token that did it.
    let timeline = w.s.get(&format!("{path}/events")).await.body;
    let stop = timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "StopRequested")
        .cloned()
        .expect("stop event");
    let (_, me) = w.send(who, Method::GET, "/v1/me", None, &[]).await;
    assert_eq!(stop["actor"], w.users[who].as_str());
    assert_eq!(stop["token_id"], me["token_id"]);

    // Revoking a token locks it out on the very next request.
    let token_id = me["token_id"].as_str().unwrap().to_string();
    let (status, _) = w
        .send(
            who,
            Method::DELETE,
            &format!("/v1/tokens/{token_id}"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let r =
        w.s.client
            .get(format!("{}/v1/me", w.s.base))
            .bearer_auth(w.tokens[who].clone().unwrap())
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("www-authenticate").is_some());
    // Token listings never carry secrets.
    let tokens =
        w.s.get(&format!("/v1/users/{}/tokens", w.users[who]))
            .await
            .body;
    assert!(
        !tokens
            .to_string()
            .contains(w.tokens[who].as_deref().unwrap()),
        "{tokens}"
    );
    assert!(
        tokens["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == token_id.as_str() && !t["revoked_at"].is_null())
    );
}
