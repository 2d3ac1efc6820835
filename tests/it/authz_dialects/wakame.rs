//! Wakame-VDC (`X-VDC-Account-UUID` and the checked `X-VDC-Requester-Token`): an account
//! the caller may not see is the 400 code 103 of one that does not exist (as a missing or
//! bad token is), another tenant's instance is code 100 like an unknown id, destroy takes
//! only the account's own instances (403 code 105, even for staff), and the list and its
//! `owner_total` show a tenant only its own.

use std::collections::BTreeSet;

use reqwest::{Method, RequestBuilder};
use serde_json::json;

use super::{Dialect, Matrix, Row, Target, Tenants, on, row, status_and_code, tenants, unknown};
use crate::harness::{Resp, Server};

pub(super) const PREFIX: &str = "/wakame/api/";
const API: &str = "/wakame/api";

fn account(customer: &str) -> String {
    format!("a-{}", customer.replace('-', ""))
}

/// A request in `customer`'s account and `project`, as dcmgr's clients sent it.
fn request(
    t: &Tenants,
    method: Method,
    path: &str,
    token: Option<&str>,
    customer: &str,
    project: &str,
) -> RequestBuilder {
    let req = t
        .s()
        .http(method, path)
        .header("X-VDC-Account-UUID", account(customer))
        .header("X-Project-Id", project);
    match token {
        Some(token) => req.header("X-VDC-Requester-Token", token),
        None => req,
    }
}

/// Each principal works in its home account and project.
fn client(
    t: &Tenants,
    who: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> RequestBuilder {
    request(t, method, path, token, t.home_customer(who), t.home(who))
}

fn dialect() -> Dialect {
    Dialect {
        prefix: PREFIX,
        client,
        spell: |o| o.short.clone(),
        outcome: |r| status_and_code(r, r.body.get("code"), 3),
    }
}

/// An account the caller may not see, or no valid token.
const NO: u32 = 400_103;
const LIST: [u32; 10] = [200, 200, 200, 200, 200, NO, NO, NO, NO, NO];
const READ: [[u32; 10]; 2] = [
    [200, 200, 200, 200, 404_100, NO, NO, NO, NO, NO],
    [200, 404_100, 404_100, 404_100, 200, NO, NO, NO, NO, NO],
];

/// Who may operate gets `x`; a manager sees the instance and is refused (code 105).
fn operate(x: u32) -> [[u32; 10]; 2] {
    [
        [x, x, x, 403_105, 404_100, NO, NO, NO, NO, NO],
        [x, 404_100, 404_100, 404_100, x, NO, NO, NO, NO, NO],
    ]
}

fn rows() -> Vec<Row> {
    let i = format!("{API}/instances/{{id}}");
    // Staff works in account A: B1's instance is not the account's to destroy.
    let mut destroy = operate(200);
    destroy[1][0] = 403_105;
    vec![
        row(Method::GET, format!("{API}/instances"), LIST),
        row(
            Method::POST,
            format!("{API}/instances"),
            [200, 200, 200, 403_105, 200, NO, NO, NO, NO, NO],
        )
        .json(json!({"instance": {"image_id": "wmi-{image_hex}", "instance_spec_id": "is-{flavor_hex}"}}))
        .appends(),
        on(Method::GET, &i, Target::Instance, &READ),
        on(Method::DELETE, &i, Target::Fresh, &destroy).appends(),
        on(Method::PUT, format!("{i}/reboot"), Target::Fresh, &operate(200)).appends(),
        on(Method::PUT, format!("{i}/stop"), Target::Fresh, &operate(200)).appends(),
        // A running instance is not started: code 125 past the policy.
        on(Method::PUT, format!("{i}/start"), Target::Instance, &operate(400_125)),
    ]
}

on_each_backend!(#[tokio::test] async fn wakame_authorization_matrix);
async fn wakame_authorization_matrix() {
    let t = tenants().await;
    lists_show_a_tenant_only_its_own(&t).await;
    let mut m = Matrix::new(&t, dialect());
    m.run(rows()).await;
    m.finish();
}

/// An answer with `id` blanked out.
fn blanked(r: &Resp, id: &str) -> String {
    format!("{} {}", r.status, r.body.to_string().replace(id, "{id}"))
}

async fn lists_show_a_tenant_only_its_own(t: &Tenants) {
    let w = &t.w;
    let none = unknown().uuid;
    let tenant_a = ["staff", "owner_a", "admin_a1", "manager_a1"];
    let tenant_b = ["staff", "admin_b1"];
    for who in [
        "staff",
        "owner_a",
        "admin_a1",
        "manager_a1",
        "admin_b1",
        "no_role",
        "agent",
    ] {
        let token = t.token(who);
        let get = |customer: &str, query: &str| {
            let path = format!("{API}/instances{query}");
            Server::send(request(
                t,
                Method::GET,
                &path,
                token.as_deref(),
                customer,
                &w.a1,
            ))
        };
        for (customer, tenant) in [
            (&w.customer_a, &tenant_a[..]),
            (&w.customer_b, &tenant_b[..]),
        ] {
            if !tenant.contains(&who) {
                let theirs = get(customer, "").await;
                let nothing = get(&none, "").await;
                assert_eq!(theirs.status, 400, "{who} in {customer}");
                assert_eq!(
                    blanked(&theirs, &customer.replace('-', "")),
                    blanked(&nothing, &none.replace('-', "")),
                    "{who} in {customer}"
                );
                continue;
            }
            let want: BTreeSet<String> = t
                .instances
                .iter()
                .filter(|p| t.sees(who, &p.project))
                .filter(|p| (customer == &w.customer_b) == (p.project == w.b1))
                .map(|p| p.obj.short.clone())
                .collect();
            let r = get(customer, "").await;
            assert_eq!(r.status, 200, "{who} in {customer}: {}", r.body);
            let ids: BTreeSet<String> = r.body[0]["results"]
                .as_array()
                .expect("results")
                .iter()
                .map(|d| d["id"].as_str().expect("id").to_string())
                .collect();
            assert_eq!(ids, want, "{who} lists {customer}");
            assert_eq!(
                r.body[0]["owner_total"],
                want.len(),
                "{who} counts {customer}"
            );
            let page = &get(customer, "?start=0&limit=1").await.body[0];
            assert_eq!(page["owner_total"], want.len(), "{who} pages {customer}");
            assert_eq!(
                page["results"].as_array().map(Vec::len),
                Some(want.len().min(1))
            );
        }
    }
    // A project of the account the caller may not see is one the account does not have.
    let create = json!({"image_id": format!("wmi-{}", w.image), "instance_spec_id": format!("is-{}", w.flavor)});
    for (who, project) in [
        ("admin_a1", &w.a2),
        ("manager_a1", &w.a2),
        ("owner_a", &w.b1),
    ] {
        let before = t.s().position().await;
        let mut answers = Vec::new();
        for p in [project.as_str(), none.as_str()] {
            let path = format!("{API}/instances");
            let req = request(
                t,
                Method::POST,
                &path,
                t.token(who).as_deref(),
                &w.customer_a,
                p,
            );
            answers.push(blanked(&Server::send(req.json(&create)).await, p));
        }
        assert!(answers[0].starts_with("400 "), "{who}: {}", answers[0]);
        assert_eq!(answers[0], answers[1], "{who} creates in {project}");
        assert_eq!(t.s().position().await, before, "{who} appended");
    }
}
