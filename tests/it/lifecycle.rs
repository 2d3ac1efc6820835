//! The whole instance lifecycle through the real binary over HTTP, checking each answer,
//! the timeline and the list filters at every step.

use crate::harness::{Catalog, Server};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Asserts whether `id` is in the list for `query`, and that `total` agrees with the items.
async fn listed(s: &Server, query: &str, id: &str) -> bool {
    let r = s.get(&format!("/v1/instances?{query}")).await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
    let items = r.body["items"].as_array().expect("items");
    assert_eq!(
        r.body["total"].as_u64(),
        Some(items.len() as u64),
        "{query}"
    );
    items.iter().any(|i| i["id"] == id)
}

async fn timeline_types(s: &Server, id: &str) -> Vec<String> {
    let r = s.get(&format!("/v1/instances/{id}/events")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["type"].as_str().expect("type").to_string())
        .collect()
}

async fn last_type(s: &Server, id: &str) -> String {
    timeline_types(s, id)
        .await
        .last()
        .cloned()
        .unwrap_or_default()
}

on_each_backend!(#[tokio::test] async fn full_lifecycle_with_timeline_and_filters_at_each_step);
async fn full_lifecycle_with_timeline_and_filters_at_each_step() {
    let s = Server::start(&["--driver-delay-ms", "0"]);
    let c = Catalog::create(&s).await;

    // create
    let mut body = c.instance("web-1");
    body["hostname"] = json!("web-1.example");
    body["security_groups"] = json!(["web", "ssh"]);
    body["tags"] = json!({"env": "prod", "team": "core"});
    body["availability_zone"] = json!("az-1");
    body["network_ids"] = json!([c.network]);
    body["ssh_key_id"] = json!(c.ssh_key);
    let r = s
        .call_with(
            Method::POST,
            "/v1/instances",
            Some(body),
            &[("X-Request-Id", "req-create-1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.id();
    assert_eq!(
        r.header("location").as_deref(),
        Some(format!("/v1/instances/{id}").as_str())
    );
    assert_eq!(r.header("etag").as_deref(), Some("\"1\""));
    assert_eq!(r.header("x-request-id").as_deref(), Some("req-create-1"));
    assert_eq!(r.body["state"], "provisioning");
    assert_eq!(r.body["power_state"], "off");
    assert_eq!(r.body["target_power_state"], "on");
    assert_eq!(r.body["customer_id"], c.customer.as_str());
    assert_eq!(
        (
            r.body["vcpus"].as_u64(),
            r.body["memory_mb"].as_u64(),
            r.body["disk_gb"].as_u64()
        ),
        (Some(1), Some(1024), Some(10))
    );
    let short = r.body["short_id"].as_str().expect("short id").to_string();
    assert!(short.starts_with("i-") && short.len() == 10, "{short}");

    let v = s.wait_for_state(&id, "running").await;
    assert_eq!(v["power_state"], "on");
    assert_eq!(v["target_power_state"], Value::Null);
    assert_eq!(timeline_types(&s, &id).await, ["Created", "Provisioned"]);
    let by_short = s.get(&format!("/v1/instances/{short}")).await;
    assert_eq!(by_short.status, StatusCode::OK);
    assert_eq!(by_short.body["id"], id.as_str());
    for q in [
        "state=running".to_string(),
        format!("project_id={}", c.project),
        format!("customer_id={}", c.customer),
        "hostname=web-1.example".into(),
        "name=web-1".into(),
        "security_group=ssh".into(),
        format!("flavor_id={}", c.flavor),
        format!("image_id={}", c.image),
        "availability_zone=az-1".into(),
        "tag=env:prod".into(),
        "tag=env:prod&tag=team:core&state=running".into(),
    ] {
        assert!(listed(&s, &q, &id).await, "missing from {q}");
    }
    for q in [
        "state=stopped".to_string(),
        format!("project_id={}", c.project2),
        "hostname=other".into(),
        "tag=env:dev".into(),
        "security_group=db".into(),
        "availability_zone=az-2".into(),
    ] {
        assert!(!listed(&s, &q, &id).await, "wrongly in {q}");
    }

    // stop
    let r = s.post(&format!("/v1/instances/{id}/stop"), json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["state"], "stopping");
    assert_eq!(r.body["target_power_state"], "off");
    s.wait_for_state(&id, "stopped").await;
    assert_eq!(last_type(&s, &id).await, "Stopped");
    assert!(listed(&s, "state=stopped", &id).await);
    assert!(!listed(&s, "state=running", &id).await);

    // resize
    let r = s
        .post(
            &format!("/v1/instances/{id}/resize"),
            json!({"flavor_id": c.flavor_big}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["flavor_id"], c.flavor_big.as_str());
    assert_eq!(r.body["vcpus"], 4);
    assert_eq!(r.body["memory_mb"], 8192);
    assert_eq!(r.body["state"], "stopped");
    assert_eq!(last_type(&s, &id).await, "Resized");
    assert!(listed(&s, &format!("flavor_id={}", c.flavor_big), &id).await);
    assert!(!listed(&s, &format!("flavor_id={}", c.flavor), &id).await);

    // start
    let r = s
        .post(&format!("/v1/instances/{id}/start"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["state"], "starting");
    s.wait_for_state(&id, "running").await;
    assert_eq!(last_type(&s, &id).await, "Started");

    // reboot
    let r = s
        .post(&format!("/v1/instances/{id}/reboot"), json!({"soft": true}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["state"], "rebooting");
    assert_eq!(r.body["target_power_state"], "reboot");
    s.wait_for_state(&id, "running").await;
    assert_eq!(last_type(&s, &id).await, "Rebooted");

    // destroy: refused while running, allowed with force
    let r = s
        .call(Method::DELETE, &format!("/v1/instances/{id}"), None)
        .await;
    r.assert_problem(409, "invalid_transition");
    assert_eq!(r.body["current_state"], "running");
    assert_eq!(r.body["allowed_states"], json!(["stopped", "error"]));
    let r = s
        .call(
            Method::DELETE,
            &format!("/v1/instances/{id}?force=true"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], "destroyed");
    assert_eq!(r.body["power_state"], "off");
    assert_eq!(last_type(&s, &id).await, "Destroyed");
    assert!(listed(&s, "state=destroyed", &id).await);
    assert!(!listed(&s, "state=running", &id).await);

    // recover
    let r = s
        .post(&format!("/v1/instances/{id}/recover"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], "stopped");
    assert_eq!(last_type(&s, &id).await, "Recovered");
    assert!(listed(&s, "state=stopped", &id).await);

    // destroy again (stopped: no force needed)
    let r = s
        .call(Method::DELETE, &format!("/v1/instances/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], "destroyed");

    // purge
    let r = s
        .post(&format!("/v1/instances/{id}/purge"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    s.get(&format!("/v1/instances/{id}"))
        .await
        .assert_problem(410, "gone");
    s.get(&format!("/v1/instances/{short}"))
        .await
        .assert_problem(410, "gone");
    for q in ["", "state=destroyed", "state=purged", "tag=env:prod"] {
        assert!(!listed(&s, q, &id).await, "purged instance in {q}");
    }
    s.post(&format!("/v1/instances/{id}/start"), json!({}))
        .await
        .assert_problem(410, "gone");

    // the whole timeline survives the purge, in order, with provenance
    let r = s.get(&format!("/v1/instances/{id}/events")).await;
    let items = r.body["items"].as_array().expect("items").clone();
    let types: Vec<&str> = items
        .iter()
        .map(|e| e["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        types,
        [
            "Created",
            "Provisioned",
            "StopRequested",
            "Stopped",
            "Resized",
            "StartRequested",
            "Started",
            "RebootRequested",
            "Rebooted",
            "Destroyed",
            "Recovered",
            "Destroyed",
            "Purged"
        ]
    );
    for (i, e) in items.iter().enumerate() {
        assert_eq!(e["version"].as_u64(), Some(i as u64 + 1));
        // Completions come from the driver; everything else from the caller.
        let completion = ["Provisioned", "Stopped", "Started", "Rebooted"].contains(&types[i]);
        let (actor, origin) = if completion {
            ("driver:simulated", "driver")
        } else {
            ("admin", "native")
        };
        assert_eq!(
            (e["actor"].as_str(), e["origin"].as_str()),
            (Some(actor), Some(origin)),
            "{e}"
        );
        if i > 0 {
            assert!(e["position"].as_u64() > items[i - 1]["position"].as_u64());
        }
    }
    assert_eq!(items[0]["request_id"], "req-create-1");
}

on_each_backend!(#[tokio::test] async fn power_endpoint_reports_and_drives_the_power_state);
async fn power_endpoint_reports_and_drives_the_power_state() {
    let s = Server::start(&["--driver-delay-ms", "0"]);
    let c = Catalog::create(&s).await;
    let id = s.post("/v1/instances", c.instance("p1")).await.id();
    s.wait_for_state(&id, "running").await;
    let r = s.get(&format!("/v1/instances/{id}/power")).await;
    assert_eq!(
        r.body,
        json!({"power_state": "on", "target_power_state": null})
    );

    let r = s
        .call(
            Method::PUT,
            &format!("/v1/instances/{id}/power"),
            Some(json!({"target": "soft_off"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"power_state": "on", "target_power_state": "off"})
    );
    s.wait_for_state(&id, "stopped").await;

    let r = s
        .call(
            Method::PUT,
            &format!("/v1/instances/{id}/power"),
            Some(json!({"target": "on"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    s.wait_for_state(&id, "running").await;

    // a hard "off" cuts the power at once
    let r = s
        .call(
            Method::PUT,
            &format!("/v1/instances/{id}/power"),
            Some(json!({"target": "off"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        r.body,
        json!({"power_state": "off", "target_power_state": null})
    );
    assert_eq!(
        s.get(&format!("/v1/instances/{id}")).await.body["state"],
        "stopped"
    );

    let r = s
        .call(
            Method::PUT,
            &format!("/v1/instances/{id}/power"),
            Some(json!({"target": "sideways"})),
        )
        .await;
    r.assert_problem(400, "invalid_body");
}

on_each_backend!(#[tokio::test] async fn patch_updates_fields_and_setting_same_values_appends_nothing);
async fn patch_updates_fields_and_setting_same_values_appends_nothing() {
    let s = Server::start(&["--driver-delay-ms", "0"]);
    let c = Catalog::create(&s).await;
    let id = s.post("/v1/instances", c.instance("n1")).await.id();
    s.wait_for_state(&id, "running").await;
    let r = s
        .call(
            Method::PATCH,
            &format!("/v1/instances/{id}"),
            Some(json!({"name": "n2", "hostname": "n2.example", "tags": {"a": "b"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["name"].as_str(), r.body["hostname"].as_str()),
        (Some("n2"), Some("n2.example"))
    );
    assert!(listed(&s, "name=n2&tag=a:b", &id).await);
    assert!(!listed(&s, "name=n1", &id).await);
    let version = r.body["version"].as_u64().expect("version");

    let before = s.position().await;
    let r = s
        .call(
            Method::PATCH,
            &format!("/v1/instances/{id}"),
            Some(json!({"name": "n2"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["version"].as_u64(), Some(version));
    assert_eq!(s.position().await, before);

    // null clears an optional field
    let r = s
        .call(
            Method::PATCH,
            &format!("/v1/instances/{id}"),
            Some(json!({"hostname": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["hostname"], Value::Null);
    assert!(!listed(&s, "hostname=n2.example", &id).await);
}

on_each_backend!(#[tokio::test] async fn catalog_resources_list_page_and_show);
async fn catalog_resources_list_page_and_show() {
    let s = Server::start(&[]);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            s.post("/v1/images", json!({"name": format!("img-{i}")}))
                .await
                .id(),
        );
    }
    let r = s.get("/v1/images?limit=2").await;
    assert_eq!(r.body["total"], 5);
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(2));
    let mut seen: Vec<String> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    let mut cursor = r.body["next_cursor"].as_str().map(str::to_string);
    while let Some(cur) = cursor {
        let r = s.get(&format!("/v1/images?limit=2&cursor={cur}")).await;
        seen.extend(
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_string()),
        );
        cursor = r.body["next_cursor"].as_str().map(str::to_string);
    }
    assert_eq!(seen, ids, "pages in creation order, each exactly once");
    let r = s.get(&format!("/v1/images/{}", ids[0])).await;
    assert_eq!(r.body["name"], "img-0");
    s.get(&format!("/v1/flavors/{}", ids[0]))
        .await
        .assert_problem(404, "not_found");
}

on_each_backend!(#[tokio::test] async fn a_lock_refuses_power_and_deletion_to_members_until_lifted);
async fn a_lock_refuses_power_and_deletion_to_members_until_lifted() {
    let s = Server::start(&["--driver-delay-ms", "0"]);
    let c = Catalog::create(&s).await;
    let mut body = c.instance("locked-1");
    body["attributes"] = json!({"owner": "ops"});
    let created = s.post("/v1/instances", body).await;
    assert_eq!(created.body["attributes"], json!({"owner": "ops"}));
    let id = created.id();
    s.wait_for_state(&id, "running").await;
    let (member, token) = s.user("lock-member", false).await;
    let r = s
        .post(
            &format!("/v1/projects/{}/members", c.project),
            json!({"user_id": member, "role": "administrator"}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let as_member = |method: Method, path: String| {
        let req = s.http(method, &path).bearer_auth(&token);
        Server::send(req)
    };

    let r = as_member(Method::POST, format!("/v1/instances/{id}/lock")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["locked"], json!(true));
    assert_eq!(last_type(&s, &id).await, "Locked");
    let before = s.position().await;
    for (method, path) in [
        (Method::POST, format!("/v1/instances/{id}/stop")),
        (Method::POST, format!("/v1/instances/{id}/reboot")),
        (Method::DELETE, format!("/v1/instances/{id}")),
    ] {
        let r = as_member(method, path.clone()).await;
        r.assert_problem(409, "locked");
    }
    assert_eq!(s.position().await, before, "refused writes append nothing");
    // Renaming is not held back by a lock.
    let r = s
        .http(Method::PATCH, &format!("/v1/instances/{id}"))
        .bearer_auth(&token)
        .json(&json!({"name": "still-mine"}));
    assert_eq!(Server::send(r).await.status, StatusCode::OK);

    // Staff are not held back, and take the lock over: the member can no longer lift it.
    let r = s.post(&format!("/v1/instances/{id}/lock"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    as_member(Method::POST, format!("/v1/instances/{id}/unlock"))
        .await
        .assert_problem(409, "locked");
    let r = s.post(&format!("/v1/instances/{id}/stop"), json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    s.wait_for_state(&id, "stopped").await;
    let r = s
        .post(&format!("/v1/instances/{id}/unlock"), json!({}))
        .await;
    assert_eq!(r.body["locked"], json!(false));
    let r = as_member(Method::POST, format!("/v1/instances/{id}/start")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
}

on_each_backend!(#[tokio::test] async fn operations_offer_what_role_lock_and_state_allow_now);
async fn operations_offer_what_role_lock_and_state_allow_now() {
    let s = Server::start(&["--driver-delay-ms", "0"]);
    let c = Catalog::create(&s).await;
    let id = s.post("/v1/instances", c.instance("ops")).await.id();
    s.wait_for_state(&id, "running").await;
    let mut tokens = Vec::new();
    for (name, role) in [("ada", "administrator"), ("max", "manager")] {
        let (user, token) = s.user(name, false).await;
        let r = s
            .post(
                &format!("/v1/projects/{}/members", c.project),
                json!({"user_id": user, "role": role}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        tokens.push(token);
    }
    let offered = |token: String| {
        let s = &s;
        let path = format!("/v1/instances/{id}/operations");
        async move {
            let r = Server::send(s.http(Method::GET, &path).bearer_auth(token)).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            let ops: Vec<String> = r.body["operations"]
                .as_array()
                .expect("operations")
                .iter()
                .map(|o| o.as_str().expect("name").to_string())
                .collect();
            ops
        }
    };
    let (admin, manager) = (tokens[0].clone(), tokens[1].clone());
    let staff = crate::harness::TOKEN.to_string();
    let running = offered(admin.clone()).await;
    for op in ["stop", "force_stop", "reboot", "lock"] {
        assert!(
            running.contains(&op.to_string()),
            "{op} while running: {running:?}"
        );
    }
    for op in ["start", "recover", "purge", "unlock"] {
        assert!(
            !running.contains(&op.to_string()),
            "{op} while running: {running:?}"
        );
    }
    assert!(
        offered(manager).await.is_empty(),
        "a manager operates nothing"
    );
    // Staff lock it: the project's administrator may no longer stop it; staff may.
    let r = s.post(&format!("/v1/instances/{id}/lock"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let locked = offered(admin.clone()).await;
    assert!(!locked.contains(&"stop".to_string()), "{locked:?}");
    let as_staff = offered(staff.clone()).await;
    assert!(
        as_staff.contains(&"stop".to_string()) && as_staff.contains(&"unlock".to_string()),
        "{as_staff:?}"
    );
    // Each offer is what a request meets: the refused one is refused.
    let refused = Server::send(
        s.http(Method::POST, &format!("/v1/instances/{id}/stop"))
            .bearer_auth(admin.clone())
            .json(&json!({})),
    )
    .await;
    assert_eq!(refused.status.as_u16(), 409, "{}", refused.body);
    let r = s
        .post(&format!("/v1/instances/{id}/unlock"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = s.post(&format!("/v1/instances/{id}/stop"), json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    s.wait_for_state(&id, "stopped").await;
    let stopped = offered(admin).await;
    assert!(stopped.contains(&"start".to_string()), "{stopped:?}");
    assert!(!stopped.contains(&"stop".to_string()), "{stopped:?}");
}
