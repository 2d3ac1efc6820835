//! What the catalog decides for the instances that use it, through the native API: security
//! groups with unique names, flavors restricted to projects or sized per instance, owned
//! SSH keys, and addresses assigned from a network without collisions.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Catalog, Server};

on_each_backend!(#[tokio::test] async fn catalog_rules_hold_for_every_instance_that_uses_it);
async fn catalog_rules_hold_for_every_instance_that_uses_it() {
    let s = Server::start(&["--driver-delay-ms", "0"]);
    let c = Catalog::create(&s).await;

    // Security groups: unique names, checked fields.
    let sg = json!({"name": "ssh", "protocol": "TCP", "from_port": 22, "to_port": 22, "ip_range": "0.0.0.0/0"});
    let r = s.post("/v1/security-groups", sg.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["protocol"], "tcp");
    s.post("/v1/security-groups", sg)
        .await
        .assert_problem(409, "conflict");
    s.post(
        "/v1/security-groups",
        json!({"name": "x", "protocol": "gre", "from_port": 1, "to_port": 2, "ip_range": "0.0.0.0/0"}),
    )
    .await
    .assert_problem(400, "invalid_field");

    // A flavor only some projects may use.
    let only_web = s
        .post(
            "/v1/flavors",
            json!({"name": "web.only", "vcpus": 2, "memory_mb": 2048, "disk_gb": 20, "projects": [c.project]}),
        )
        .await
        .id();
    let mut body = c.instance("elsewhere");
    body["project_id"] = json!(c.project2);
    body["flavor_id"] = json!(only_web);
    let r = s.post("/v1/instances", body.clone()).await;
    r.assert_problem(422, "unusable_reference");
    assert_eq!(r.body["field"], "flavor_id");
    body["project_id"] = json!(c.project);
    assert_eq!(
        s.post("/v1/instances", body).await.status,
        StatusCode::CREATED
    );
    let r = s
        .post(
            "/v1/flavors",
            json!({"name": "f", "vcpus": 1, "memory_mb": 1, "disk_gb": 1, "projects": [c.customer]}),
        )
        .await;
    r.assert_problem(422, "unknown_reference");
    assert_eq!(r.body["field"], "project_id");

    // A custom flavor: each instance names its sizes, up to the flavor's.
    let custom = s
        .post(
            "/v1/flavors",
            json!({"name": "custom", "vcpus": 8, "memory_mb": 16384, "disk_gb": 50, "custom": true}),
        )
        .await
        .id();
    let mut body = c.instance("custom");
    body["flavor_id"] = json!(custom);
    s.post("/v1/instances", body.clone())
        .await
        .assert_problem(400, "invalid_field");
    body["vcpus"] = json!(16);
    body["memory_mb"] = json!(1024);
    s.post("/v1/instances", body.clone())
        .await
        .assert_problem(400, "invalid_field");
    body["vcpus"] = json!(3);
    let r = s.post("/v1/instances", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        (r.body["vcpus"].clone(), r.body["memory_mb"].clone()),
        (json!(3), json!(1024))
    );
    let mut fixed = c.instance("fixed");
    fixed["vcpus"] = json!(1);
    fixed["memory_mb"] = json!(1);
    s.post("/v1/instances", fixed)
        .await
        .assert_problem(400, "invalid_field");

    // SSH keys may belong to a user, who must exist.
    let r = s
        .post(
            "/v1/ssh-keys",
            json!({"name": "k", "public_key": "ssh-ed25519 AAAA k@x", "user_id": c.customer}),
        )
        .await;
    r.assert_problem(422, "unknown_reference");
    assert_eq!(r.body["field"], "user_id");

    // Addresses: assigned inside the network's CIDR, never twice, the asked one if free.
    let net = s
        .post(
            "/v1/networks",
            json!({"name": "tiny", "cidr": "192.168.9.0/29"}),
        )
        .await
        .id();
    let mut addresses = Vec::new();
    for i in 0..5 {
        let mut body = c.instance(&format!("n{i}"));
        body["network_ids"] = json!([net]);
        let r = s.post("/v1/instances", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        addresses.push(r.body["ip_address"].as_str().expect("address").to_string());
    }
    addresses.sort();
    addresses.dedup();
    assert_eq!(
        addresses,
        [
            "192.168.9.2",
            "192.168.9.3",
            "192.168.9.4",
            "192.168.9.5",
            "192.168.9.6"
        ],
        "a /29 has five addresses for instances"
    );
    let mut body = c.instance("full");
    body["network_ids"] = json!([net]);
    s.post("/v1/instances", body.clone())
        .await
        .assert_problem(409, "conflict");
    body["ip_address"] = json!("192.168.9.4");
    s.post("/v1/instances", body.clone())
        .await
        .assert_problem(409, "conflict");
    body["ip_address"] = json!("10.9.9.9");
    s.post("/v1/instances", body.clone())
        .await
        .assert_problem(400, "invalid_field");
    let mut no_net = c.instance("nonet");
    no_net["ip_address"] = json!("10.0.0.9");
    s.post("/v1/instances", no_net)
        .await
        .assert_problem(400, "invalid_field");
    let mut asked = c.instance("asked");
    asked["network_ids"] = json!([c.network]);
    asked["ip_address"] = json!("10.0.0.77");
    let r = s.post("/v1/instances", asked).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["ip_address"], "10.0.0.77");
}
