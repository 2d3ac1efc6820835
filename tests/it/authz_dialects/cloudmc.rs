//! CloudMC (`MC-Api-Key`, the project in the path's `{environment}`), on both bases: an
//! environment the caller may not see is code 2011 like one that does not exist, so is
//! another tenant's instance (named in its own environment or in the caller's) and its
//! task, writes need the native right (403 code 1001 for a manager), and the list and its
//! `recordCount` show a tenant only its own.

use std::collections::BTreeSet;

use reqwest::{Method, RequestBuilder};
use serde_json::json;

use super::{
    Dialect, Env, Matrix, Row, Target, Tenants, on, row, status_and_code, tenants, unknown,
};
use crate::harness::Server;

pub(super) const PREFIX: &str = "/cloudmc/api/";
const BASES: [&str; 2] = ["/cloudmc/api/v2", "/cloudmc/api/v1"];

/// As the documentation's curl sends it: the key and a JSON content type on every call.
fn client(t: &Tenants, _: &str, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
    let req = t
        .s()
        .http(method, path)
        .header("Content-Type", "application/json");
    match token {
        Some(token) => req.header("MC-Api-Key", token),
        None => req,
    }
}

fn dialect() -> Dialect {
    Dialect {
        prefix: PREFIX,
        client,
        spell: |o| o.uuid.clone(),
        outcome: |r| status_and_code(r, r.body.pointer("/errors/0/code"), 4),
    }
}

/// Not found (an environment, an instance, a task).
const NF: u32 = 404_2011;
const UN: u32 = 401_1000;
const HOME: [u32; 10] = [200, 200, 200, 200, 200, NF, NF, UN, UN, UN];
const TASK: [[u32; 10]; 2] = [
    [200, 200, 200, 200, NF, NF, 200, UN, UN, UN],
    [200, NF, NF, NF, 200, NF, 200, UN, UN, UN],
];

/// `read` is what a manager gets (200 to read, 403 code 1001 to change); `x` is what
/// whoever may operate gets. In `env` the instance's own project, or the caller's.
fn instance(x: u32, read: u32, env: Env) -> [[u32; 10]; 2] {
    // Staff working in A1 does not find B1's instance there.
    let staff_b = if env == Env::Home { NF } else { x };
    [
        [x, x, x, read, NF, NF, NF, UN, UN, UN],
        [staff_b, NF, NF, NF, x, NF, NF, UN, UN, UN],
    ]
}

fn rows(base: &str) -> Vec<Row> {
    let c = format!("{base}/services/{{service}}/{{environment}}/instances");
    let i = format!("{c}/{{id}}");
    let mut rows = vec![
        row(Method::GET, &c, HOME),
        row(
            Method::POST,
            &c,
            [200, 200, 200, 403_1001, 200, NF, NF, UN, UN, UN],
        )
        .json(json!({"name": "cm-{who}", "computeOfferingId": "{flavor}", "networkId": "{network}", "templateId": "{image}"}))
        .appends(),
        on(Method::GET, format!("{base}/tasks/{{id}}"), Target::Task, &TASK),
    ];
    // Another tenant's instance named in the caller's own environment, on one base (both
    // bases route to the same handlers).
    let envs: &[Env] = match base {
        "/cloudmc/api/v2" => &[Env::Object, Env::Home],
        _ => &[Env::Object],
    };
    for &env in envs {
        rows.extend([
            on(Method::GET, &i, Target::Instance, &instance(200, 200, env)).env(env),
            // An empty name, and a start of a running instance, are refused past the policy.
            on(
                Method::PUT,
                &i,
                Target::Instance,
                &instance(400_2001, 403_1001, env),
            )
            .json(json!({"name": ""}))
            .env(env),
            on(
                Method::POST,
                &i,
                Target::Instance,
                &instance(400_2012, 403_1001, env),
            )
            .query("?operation=start")
            .env(env),
            on(
                Method::DELETE,
                &i,
                Target::Fresh,
                &instance(200, 403_1001, env),
            )
            .env(env)
            .appends(),
        ]);
    }
    rows
}

on_each_backend!(#[tokio::test] async fn cloudmc_authorization_matrix);
async fn cloudmc_authorization_matrix() {
    let t = tenants().await;
    lists_show_a_tenant_only_its_own(&t).await;
    let mut m = Matrix::new(&t, dialect());
    m.run(BASES.iter().flat_map(|b| rows(b)).collect()).await;
    m.finish();
    a_reset_password_is_read_back_by_the_asking_key_alone(&t).await;
}

/// A password reset's task carries the password for the key that asked; another key of
/// the same tenant reads the task without it, another tenant not at all.
async fn a_reset_password_is_read_back_by_the_asking_key_alone(t: &Tenants) {
    let inst = t.fresh(0).await;
    let asker = t.token("admin_a1");
    let path = format!(
        "{}/services/compute-on/{}/instances/{}?operation=resetPassword",
        BASES[0], t.w.a1, inst.uuid
    );
    let r = Server::send(client(t, "admin_a1", Method::POST, &path, asker.as_deref())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let task = r.body["taskId"].as_str().expect("taskId").to_string();
    let read = |who: &'static str, id: String| async move {
        let path = format!("{}/tasks/{id}", BASES[0]);
        Server::send(client(t, who, Method::GET, &path, t.token(who).as_deref())).await
    };
    let own = read("admin_a1", task.clone()).await;
    let password = own.body["result"]["password"]
        .as_str()
        .expect("the password");
    assert_eq!(password.len(), 16, "{}", own.body);
    for who in ["staff", "owner_a", "manager_a1", "agent"] {
        let r = read(who, task.clone()).await;
        assert_eq!(r.status, 200, "{who}: {}", r.body);
        assert!(r.body["result"].is_object(), "{who}: {}", r.body);
        assert!(
            !r.body.to_string().contains(password),
            "{who} reads the password"
        );
        assert!(
            r.body["result"].get("password").is_none(),
            "{who}: {}",
            r.body
        );
    }
    for who in ["admin_b1", "no_role"] {
        let theirs = read(who, task.clone()).await;
        let nothing = read(who, unknown().uuid).await;
        assert_eq!(theirs.status, 404, "{who}: {}", theirs.body);
        assert_eq!(
            theirs.body.to_string().replace(&task, "{id}"),
            nothing.body.to_string().replace(&unknown().uuid, "{id}"),
            "{who}"
        );
    }
}

async fn lists_show_a_tenant_only_its_own(t: &Tenants) {
    let w = &t.w;
    let none = unknown().uuid;
    let list =
        |env: &str, query: &str| format!("{}/services/compute-on/{env}/instances{query}", BASES[0]);
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
        for project in [&w.a1, &w.a2, &w.b1] {
            let sees = who != "agent" && t.sees(who, project);
            let send =
                |path: String| Server::send(client(t, who, Method::GET, &path, token.as_deref()));
            if !sees {
                let theirs = send(list(project, "")).await;
                let nothing = send(list(&none, "")).await;
                assert_eq!(theirs.status, 404, "{who} in {project}");
                assert_eq!(
                    theirs.body.to_string().replace(project.as_str(), "{env}"),
                    nothing.body.to_string().replace(&none, "{env}"),
                    "{who} in {project}"
                );
                continue;
            }
            let want = t.visible(who, |p| &p.project == project);
            let r = send(list(project, "")).await;
            assert_eq!(r.status, 200, "{who} in {project}: {}", r.body);
            let ids: BTreeSet<String> = r.body["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|i| i["id"].as_str().expect("id").to_string())
                .collect();
            assert_eq!(ids, want, "{who} lists {project}");
            assert_eq!(
                r.body["metadata"]["recordCount"],
                want.len(),
                "{who} counts {project}"
            );
            let r = send(list(project, "?page_size=1&page_number=1")).await;
            assert_eq!(
                r.body["metadata"]["recordCount"],
                want.len(),
                "{who} pages {project}"
            );
            assert_eq!(
                r.body["data"].as_array().map(Vec::len),
                Some(want.len().min(1))
            );
        }
    }
}
