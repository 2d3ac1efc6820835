//! Launch & Provision (the `key`/`token` arguments, or `Authorization: Bearer`): the
//! original had no 403, so a principal that sees an instance but may not act on it gets
//! Tornado's 401 page like a bad token, another tenant's instance is "Instance not found"
//! like an unknown id, and a launch into a project the caller may not see is the 408 of
//! one that does not exist. The dialect has no list.

use reqwest::{Method, RequestBuilder};

use super::{Client, Dialect, Matrix, Row, Target, Tenants, on, row, status, tenants};

pub(super) const PREFIX: &str = "/launch-provision/v1";

/// The original's clients: the token as an argument beside any `key`.
fn arguments(
    t: &Tenants,
    _: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> RequestBuilder {
    match token {
        Some(token) => {
            let sep = if path.contains('?') { '&' } else { '?' };
            t.s()
                .http(method, &format!("{path}{sep}key=111&token={token}"))
        }
        None => t.s().http(method, path),
    }
}

fn bearer(t: &Tenants, _: &str, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
    let req = t.s().http(method, path);
    match token {
        Some(token) => req.bearer_auth(token),
        None => req,
    }
}

fn dialect(client: Client) -> Dialect {
    Dialect {
        prefix: PREFIX,
        client,
        spell: |o| o.short.clone(),
        outcome: status,
    }
}

const ALL: [u32; 10] = [200, 200, 200, 200, 200, 200, 200, 401, 401, 401];
const READ: [[u32; 10]; 2] = [
    [200, 200, 200, 200, 404, 404, 200, 401, 401, 401],
    [200, 404, 404, 404, 200, 404, 200, 401, 401, 401],
];

/// Who may operate gets `x`; a manager and an agent, who see the instance, get the 401.
fn operate(x: u32) -> [[u32; 10]; 2] {
    [
        [x, x, x, 401, 404, 404, 401, 401, 401, 401],
        [x, 404, 404, 404, x, 404, 401, 401, 401, 401],
    ]
}

fn rows() -> Vec<Row> {
    let i = format!("{PREFIX}/{{id}}");
    vec![
        row(Method::GET, PREFIX, ALL),
        // Into the home project; a manager may not create there, and a project the
        // caller does not see is a launch EC2 refused.
        row(
            Method::PUT,
            format!("{PREFIX}/launch"),
            [200, 200, 200, 401, 200, 408, 408, 401, 401, 401],
        )
        .form("instance_type=m1.small&image_id={image}&project_id={home}")
        .appends(),
        // A running instance started again: 200 past the policy, nothing appended.
        on(
            Method::PUT,
            format!("{i}/start"),
            Target::Instance,
            &operate(200),
        ),
        on(
            Method::PUT,
            format!("{i}/stop"),
            Target::Fresh,
            &operate(200),
        )
        .appends(),
        on(
            Method::PUT,
            format!("{i}/terminate"),
            Target::Fresh,
            &operate(200),
        )
        .appends(),
        on(
            Method::PUT,
            format!("{i}/reboot"),
            Target::Fresh,
            &operate(200),
        )
        .appends(),
        // A running instance is not modified: the 408 past the policy.
        on(
            Method::PUT,
            format!("{i}/modify"),
            Target::Instance,
            &operate(408),
        )
        .form("attribute=user_data&value=x"),
        on(
            Method::GET,
            format!("{i}/attributes"),
            Target::Instance,
            &READ,
        ),
        on(
            Method::GET,
            format!("{i}/attributes/{{field}}"),
            Target::Instance,
            &READ,
        ),
    ]
}

on_each_backend!(#[tokio::test] async fn launch_provision_authorization_matrix);
async fn launch_provision_authorization_matrix() {
    let t = tenants().await;
    for client in [arguments, bearer] {
        let mut m = Matrix::new(&t, dialect(client));
        m.run(rows()).await;
        m.finish();
    }
}
