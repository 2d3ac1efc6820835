//! Mogan (`X-Auth-Token`, the project in `X-Project-Id`), on both mounts and both
//! spellings: a project the caller may not see is refused like one that does not exist,
//! another tenant's instance is "could not be found" like an unknown one, writes need the
//! native right (a manager or an agent is denied), and lists, `all_tenants`, flavors and
//! availability zones show a tenant only its own. The version documents are public.

use std::collections::BTreeSet;

use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use super::{Body, Dialect, Matrix, Target, Tenants, on, row, status, tenants, unknown};

pub(super) const PREFIX: &str = "/mogan";
const MOUNTS: [&str; 2] = ["/mogan/v1", "/mogan"];

/// The client of each principal names its home project.
fn client(
    t: &Tenants,
    who: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> RequestBuilder {
    let req = t
        .s()
        .http(method, path)
        .header("Accept", "application/json")
        .header("X-Project-Id", t.home(who));
    match token {
        Some(t) => req.header("X-Auth-Token", t),
        None => req,
    }
}

fn dialect() -> Dialect {
    Dialect {
        prefix: PREFIX,
        client,
        spell: |o| o.uuid.clone(),
        outcome: status,
    }
}

const PUBLIC: [u32; 10] = [200; 10];
const ALL: [u32; 10] = [200, 200, 200, 200, 200, 200, 200, 401, 401, 401];
/// In the home project, which the principal without a project may not name.
const HOME: [u32; 10] = [200, 200, 200, 200, 200, 403, 403, 401, 401, 401];
const READ: [[u32; 10]; 2] = [
    [200, 200, 200, 200, 404, 404, 200, 401, 401, 401],
    [200, 404, 404, 404, 200, 404, 200, 401, 401, 401],
];
const FLAVOR: [[u32; 10]; 2] = [
    [200, 200, 200, 200, 404, 404, 404, 401, 401, 401],
    [200, 404, 404, 404, 200, 404, 404, 401, 401, 401],
];

/// Who may operate gets `x`; a manager and an agent see the instance and are denied.
fn operate(x: u32) -> [[u32; 10]; 2] {
    [
        [x, x, x, 403, 404, 404, 403, 401, 401, 401],
        [x, 404, 404, 404, x, 404, 403, 401, 401, 401],
    ]
}

fn rows(mount: &str) -> Vec<super::Row> {
    let create = [201, 201, 201, 403, 201, 403, 403, 401, 401, 401];
    let instance = json!({"name": "mg-{who}", "instance_type_uuid": "{flavor}", "image_uuid": "{image}", "networks": [{"uuid": "{network}"}]});
    let server = json!({"server": {"name": "mg-{who}", "flavor_uuid": "{flavor}", "image_uuid": "{image}", "networks": [{"uuid": "{network}"}]}});
    let mut rows = Vec::new();
    for (collection, body) in [("instances", instance), ("servers", server)] {
        let c = format!("{mount}/{collection}");
        let i = format!("{c}/{{uuid}}");
        rows.extend([
            row(Method::GET, &c, HOME),
            row(Method::POST, &c, create).json(body).appends(),
            row(Method::GET, format!("{c}/detail"), HOME),
            on(Method::GET, &i, Target::Instance, &READ),
            // An empty patch changes nothing: 200 past the policy.
            on(Method::PATCH, &i, Target::Instance, &operate(200)).json(json!([])),
            on(Method::DELETE, &i, Target::Fresh, &operate(204)).appends(),
            on(Method::GET, format!("{i}/states"), Target::Instance, &READ),
            // "on" is not legal from active: 400 past the policy.
            on(
                Method::PUT,
                format!("{i}/states/power"),
                Target::Instance,
                &operate(400),
            )
            .json(json!({"target": "on"})),
            on(
                Method::PUT,
                format!("{i}/states/lock"),
                Target::Instance,
                &operate(400),
            )
            .json(json!({"target": "maybe"})),
        ]);
    }
    rows.extend([
        row(Method::GET, format!("{mount}/flavors"), ALL),
        on(
            Method::GET,
            format!("{mount}/flavors/{{uuid}}"),
            Target::Flavor,
            &FLAVOR,
        ),
        row(Method::GET, format!("{mount}/availability_zones"), ALL),
    ]);
    rows
}

on_each_backend!(#[tokio::test] async fn mogan_authorization_matrix);
async fn mogan_authorization_matrix() {
    let t = tenants().await;
    lists_show_a_tenant_only_its_own(&t).await;
    a_project_it_may_not_see_is_one_that_does_not_exist(&t).await;

    let mut all = Vec::new();
    for mount in MOUNTS {
        all.extend(rows(mount));
    }
    for path in ["/mogan", "/mogan/", "/mogan/v1", "/mogan/v1/"] {
        all.push(row(Method::GET, path, PUBLIC));
    }
    let mut m = Matrix::new(&t, dialect());
    m.run(all).await;
    m.finish();
}

async fn get(m: &Matrix<'_>, who: &str, path: &str) -> Value {
    let r = m.send(who, Method::GET, path, &Body::None).await;
    assert_eq!(r.status, 200, "{who} {path}: {}", r.body);
    r.body
}

fn uuids(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|i| i["uuid"].as_str().expect("uuid").to_string())
        .collect()
}

async fn lists_show_a_tenant_only_its_own(t: &Tenants) {
    let m = Matrix::new(t, dialect());
    for who in ["staff", "owner_a", "admin_a1", "manager_a1", "admin_b1"] {
        let home = t.home(who).to_string();
        let own = t.visible(who, |p| p.project == home);
        for mount in MOUNTS {
            for (path, key) in [
                ("/instances", "instances"),
                ("/instances/detail", "instances"),
                ("/servers", "servers"),
                ("/servers/detail", "servers"),
            ] {
                let body = get(&m, who, &format!("{mount}{path}")).await;
                assert_eq!(uuids(&body[key]), own, "{who} {mount}{path}");
            }
            // Another tenant's name matches nothing.
            let body = get(&m, who, &format!("{mount}/servers?name=vm-")).await;
            let named = t.visible(who, |p| p.project == home && p.name.starts_with("vm-"));
            assert_eq!(uuids(&body["servers"]), named, "{who} by name");
            // all_tenants is every project for staff, the own project for anyone else.
            let body = get(&m, who, &format!("{mount}/instances?all_tenants=1")).await;
            let want = match who {
                "staff" => t.visible(who, |_| true),
                _ => own.clone(),
            };
            assert_eq!(uuids(&body["instances"]), want, "{who} all_tenants");
            let body = get(&m, who, &format!("{mount}/availability_zones")).await;
            let zones: BTreeSet<String> = t
                .instances
                .iter()
                .filter(|p| t.sees(who, &p.project))
                .filter_map(|p| p.zone.clone())
                .collect();
            let shown: BTreeSet<String> = body["availability_zones"]
                .as_array()
                .expect("zones")
                .iter()
                .map(|z| z.as_str().expect("zone").to_string())
                .collect();
            assert_eq!(shown, zones, "{who} zones");
            let body = get(&m, who, &format!("{mount}/flavors")).await;
            let a = ["staff", "owner_a", "admin_a1", "manager_a1"].contains(&who);
            let usable = t
                .usable_flavors(who, a, who == "admin_b1" || who == "staff")
                .await;
            assert_eq!(uuids(&body["flavors"]), usable, "{who} flavors");
        }
    }
}

/// `X-Project-Id` naming another tenant's project answers what naming no project at all
/// answers, for lists and creates.
async fn a_project_it_may_not_see_is_one_that_does_not_exist(t: &Tenants) {
    let w = &t.w;
    let none = unknown().uuid;
    let create = json!({"name": "x", "instance_type_uuid": w.flavor, "image_uuid": w.image, "networks": [{"uuid": t.network}]});
    for (who, theirs) in [
        ("admin_a1", &w.b1),
        ("manager_a1", &w.a2),
        ("admin_b1", &w.a1),
        ("no_role", &w.a1),
        ("agent", &w.b1),
    ] {
        for (method, path, body) in [
            (Method::GET, "/mogan/v1/instances", None),
            (Method::GET, "/mogan/servers/detail", None),
            (Method::POST, "/mogan/v1/instances", Some(&create)),
        ] {
            let before = t.s().position().await;
            let mut answers = Vec::new();
            for project in [theirs.as_str(), none.as_str()] {
                let token = t.token(who).expect("token");
                let mut req = t
                    .s()
                    .http(method.clone(), path)
                    .header("X-Auth-Token", token)
                    .header("X-Project-Id", project);
                if let Some(b) = body {
                    req = req.json(b);
                }
                let r = crate::harness::Server::send(req).await;
                assert_eq!(
                    r.status, 403,
                    "{who} {method} {path} in {project}: {}",
                    r.body
                );
                let text = r.body.to_string().replace(&project.replace('-', ""), "{p}");
                answers.push(text);
            }
            assert_eq!(answers[0], answers[1], "{who} {method} {path}");
            assert_eq!(
                t.s().position().await,
                before,
                "{who} {method} {path} appended"
            );
        }
    }
}
