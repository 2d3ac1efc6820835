//! NodeConductor (`Authorization: Token`): only staff and project administrators create
//! and operate (a customer owner is refused, as the document says), everything hidden is
//! DRF's `{"detail": "Not found"}`, and lists, `X-Result-Count`, projects, customers,
//! keys and flavors show a tenant only its own.

use std::collections::BTreeSet;

use reqwest::{Method, RequestBuilder};
use serde_json::json;

use super::{Body, Dialect, Matrix, Placed, Target, Tenants, WHO, on, row, status, tenants};

pub(super) const PREFIX: &str = "/nodeconductor/api/";
const API: &str = "/nodeconductor/api";

fn client(t: &Tenants, _: &str, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
    let req = t
        .s()
        .http(method, path)
        .header("Accept", "application/json");
    match token {
        Some(t) => req.header("Authorization", format!("Token {t}")),
        None => req,
    }
}

fn dialect() -> Dialect {
    Dialect {
        prefix: PREFIX,
        client,
        spell: |o| o.hex(),
        outcome: status,
    }
}

const ALL: [u32; 10] = [200, 200, 200, 200, 200, 200, 200, 401, 401, 401];
const READ: [[u32; 10]; 2] = [
    [200, 200, 200, 200, 404, 404, 200, 401, 401, 401],
    [200, 404, 404, 404, 200, 404, 200, 401, 401, 401],
];
/// Projects, customers and restricted flavors: the tenant's own, never the agent's.
const TENANT: [[u32; 10]; 2] = [
    [200, 200, 200, 200, 404, 404, 404, 401, 401, 401],
    [200, 404, 404, 404, 200, 404, 404, 401, 401, 401],
];
/// Keys are their owner's alone.
const OWN: [[u32; 10]; 2] = [
    [404, 404, 200, 404, 404, 404, 404, 401, 401, 401],
    [404, 404, 404, 404, 200, 404, 404, 401, 401, 401],
];

/// Staff and the project's administrator get `x` (what the operation answers past the
/// role check); whoever else sees the instance 403, the rest 404.
fn operate(x: u32) -> [[u32; 10]; 2] {
    [
        [x, 403, x, 403, 404, 404, 403, 401, 401, 401],
        [x, 404, 404, 404, x, 404, 403, 401, 401, 401],
    ]
}

fn link(collection: &str, id: &str) -> String {
    format!("http://client.example/api/{collection}/{id}/")
}

on_each_backend!(#[tokio::test] async fn nodeconductor_authorization_matrix);
async fn nodeconductor_authorization_matrix() {
    let t = tenants().await;
    lists_show_a_tenant_only_its_own(&t).await;

    let i = format!("{API}/instances/{{uuid}}/");
    let blank = json!({"hostname": ""});
    let rows = vec![
        row(Method::GET, format!("{API}/instances/"), ALL),
        // Into A1, with the caller's own key.
        row(
            Method::POST,
            format!("{API}/instances/"),
            [201, 403, 201, 403, 400, 400, 400, 401, 401, 401],
        )
        .json(json!({
            "hostname": "nc-{who}",
            "template": link("iaas-templates", "{image}"),
            "flavor": link("flavors", "{flavor}"),
            "project": link("projects", "{a1}"),
            "ssh_public_key": link("keys", "{key}"),
        }))
        .appends(),
        on(Method::GET, &i, Target::Instance, &READ),
        // A blank hostname is refused after the role check.
        on(Method::PUT, &i, Target::Instance, &operate(400)).json(blank.clone()),
        on(Method::PATCH, &i, Target::Instance, &operate(400)).json(blank),
        // Running instances are not deleted, started or resized: 409 past the role check.
        on(Method::DELETE, &i, Target::Instance, &operate(409)),
        on(
            Method::POST,
            format!("{i}start/"),
            Target::Instance,
            &operate(409),
        ),
        on(
            Method::POST,
            format!("{i}stop/"),
            Target::Fresh,
            &operate(200),
        )
        .appends(),
        on(
            Method::POST,
            format!("{i}resize/"),
            Target::Instance,
            &operate(409),
        )
        .json(json!({"flavor": link("flavors", "{flavor}")})),
        row(Method::GET, format!("{API}/iaas-templates/"), ALL),
        row(Method::GET, format!("{API}/iaas-templates/{{uuid}}/"), ALL).of(Target::Image),
        row(Method::GET, format!("{API}/flavors/"), ALL),
        on(
            Method::GET,
            format!("{API}/flavors/{{uuid}}/"),
            Target::Flavor,
            &TENANT,
        ),
        row(Method::GET, format!("{API}/projects/"), ALL),
        on(
            Method::GET,
            format!("{API}/projects/{{uuid}}/"),
            Target::Project,
            &TENANT,
        ),
        row(Method::GET, format!("{API}/customers/"), ALL),
        on(
            Method::GET,
            format!("{API}/customers/{{uuid}}/"),
            Target::Customer,
            &TENANT,
        ),
        row(Method::GET, format!("{API}/keys/"), ALL),
        on(
            Method::GET,
            format!("{API}/keys/{{uuid}}/"),
            Target::Key,
            &OWN,
        ),
        row(Method::GET, format!("{API}/security-groups/"), ALL),
    ];
    let mut m = Matrix::new(&t, dialect());
    m.run(rows).await;
    m.finish();
}

/// The uuids of a JSON array answer and its `X-Result-Count`.
async fn listed(m: &Matrix<'_>, who: &str, path: &str) -> (BTreeSet<String>, u64) {
    let r = m
        .send(who, Method::GET, &format!("{API}{path}"), &Body::None)
        .await;
    assert_eq!(r.status, 200, "{who} {path}: {}", r.body);
    let ids = r.body.as_array().expect("a list").iter();
    let ids = ids
        .map(|i| i["uuid"].as_str().expect("uuid").to_string())
        .collect();
    let count = r.header("x-result-count").expect("X-Result-Count");
    (ids, count.parse().expect("a count"))
}

/// Which instances a filter keeps.
type Keep<'a> = dyn Fn(&Placed) -> bool + 'a;

async fn lists_show_a_tenant_only_its_own(t: &Tenants) {
    let m = Matrix::new(t, dialect());
    let w = &t.w;
    let hex = |ids: BTreeSet<String>| -> BTreeSet<String> {
        ids.iter().map(|i| i.replace('-', "")).collect()
    };
    for who in &WHO[..7] {
        let in_b1 = |p: &Placed| p.project == w.b1;
        let filters: [(&str, &Keep); 4] = [
            ("", &|_| true),
            ("?hostname=vm-b1", &|p| p.name == "vm-B1"),
            ("?customer_name=beta", &in_b1),
            ("?project=b1", &in_b1),
        ];
        for (query, keep) in filters {
            let want = hex(t.visible(who, keep));
            let (ids, count) = listed(&m, who, &format!("/instances/{query}")).await;
            assert_eq!(ids, want, "{who} lists instances{query}");
            assert_eq!(count, want.len() as u64, "{who} counts instances{query}");
        }
        let (page, count) = listed(&m, who, "/instances/?page_size=1").await;
        let all = t.visible(who, |_| true).len() as u64;
        assert_eq!((page.len() as u64, count), (all.min(1), all), "{who} paged");

        let tenant_a = ["staff", "owner_a", "admin_a1", "manager_a1"].contains(who);
        let tenant_b = ["staff", "admin_b1"].contains(who);
        let mut projects = BTreeSet::new();
        let mut customers = BTreeSet::new();
        if tenant_a {
            projects.insert(w.a1.clone());
            customers.insert(w.customer_a.clone());
        }
        if ["staff", "owner_a"].contains(who) {
            projects.insert(w.a2.clone());
        }
        if tenant_b {
            projects.insert(w.b1.clone());
            customers.insert(w.customer_b.clone());
        }
        let (ids, count) = listed(&m, who, "/projects/").await;
        assert_eq!(
            (ids, count),
            (hex(projects.clone()), projects.len() as u64),
            "{who} projects"
        );
        let (ids, count) = listed(&m, who, "/customers/").await;
        assert_eq!(
            (ids, count),
            (hex(customers.clone()), customers.len() as u64),
            "{who} customers"
        );
        let key: BTreeSet<String> = t.keys.get(who).into_iter().cloned().collect();
        assert_eq!(listed(&m, who, "/keys/").await, (hex(key), 1), "{who} keys");
        let flavors = t.usable_flavors(who, tenant_a, tenant_b).await;
        let (ids, count) = listed(&m, who, "/flavors/").await;
        assert_eq!(
            (ids, count),
            (hex(flavors.clone()), flavors.len() as u64),
            "{who} flavors"
        );
    }
}
