//! The Launch & Provision dialect as its clients met it (seed 003): every operation of
//! the document with query and form arguments and the `key`/`token` pair, the EC2 states
//! a polling client sees, several instances from one launch, the same instances natively
//! and through Mogan, and every documented refusal with nothing appended.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Resp, Server};

const API: &str = "/launch-provision/v1";

struct World {
    s: Server,
    /// Project administrator of the one project.
    leo: String,
    leo_id: String,
    /// In another customer's project.
    eve: String,
    project: String,
}

async fn world() -> World {
    let s = Server::start(&["--driver-delay-ms", "300"]);
    let post = |path: &'static str, body: Value| {
        let s = &s;
        async move {
            let r = s.post(path, body).await;
            assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.body);
            r.id()
        }
    };
    let customer = post("/v1/customers", json!({"name": "infra"})).await;
    let project = post(
        "/v1/projects",
        json!({"name": "provisioning", "customer_id": customer}),
    )
    .await;
    let other_customer = post("/v1/customers", json!({"name": "other"})).await;
    let other = post(
        "/v1/projects",
        json!({"name": "elsewhere", "customer_id": other_customer}),
    )
    .await;
    for (name, vcpus) in [("t1.micro", 1), ("m1.small", 2)] {
        post(
            "/v1/flavors",
            json!({"name": name, "vcpus": vcpus, "memory_mb": 1024 * vcpus, "disk_gb": 8}),
        )
        .await;
    }
    post("/v1/images", json!({"name": "ami-3d4ff254"})).await;
    let (leo_id, leo) = s.user("leo", false).await;
    let (eve_id, eve) = s.user("eve", false).await;
    for (user, p) in [(&leo_id, &project), (&eve_id, &other)] {
        let r = s
            .post(
                &format!("/v1/projects/{p}/members"),
                json!({"user_id": user, "role": "administrator"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    post(
        "/v1/ssh-keys",
        json!({"name": "scalacity-dev1", "public_key": "ssh-ed25519 AAAAC3Nz leo@dev", "user_id": leo_id}),
    )
    .await;
    World {
        s,
        leo,
        leo_id,
        eve,
        project,
    }
}

impl World {
    /// A request as the document shows it: arguments in the query, `key` and `token`.
    async fn query(&self, token: &str, method: Method, path: &str, args: &str) -> Resp {
        let sep = if args.is_empty() { "" } else { "&" };
        let url = format!("{API}{path}?key=111&token={token}{sep}{args}");
        Server::send(self.s.http(method, &url)).await
    }

    /// The same with the arguments as a form body (Tornado reads both).
    async fn form(&self, token: &str, path: &str, body: &str) -> Resp {
        let req = self
            .s
            .http(Method::PUT, &format!("{API}{path}"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("key=111&token={token}&{body}"));
        Server::send(req).await
    }

    async fn leo(&self, method: Method, path: &str, args: &str) -> Resp {
        self.query(&self.leo, method, path, args).await
    }

    async fn launch(&self, args: &str) -> Vec<String> {
        let r = self.form(&self.leo, "/launch", args).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
            .as_array()
            .expect("a list of ids")
            .iter()
            .map(|v| v.as_str().expect("id").to_string())
            .collect()
    }

    /// Polls `attributes` until `state`, as boto's `instance.update()` loop did.
    async fn wait_for(&self, id: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self
                .leo(Method::GET, &format!("/{id}/attributes"), "")
                .await;
            if r.body["state"] == state {
                return r.body;
            }
            assert!(Instant::now() < deadline, "{id} never {state}: {}", r.body);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn timeline(&self, id: &str) -> Vec<Value> {
        let r = self.s.get(&format!("/v1/instances/{id}/events")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["items"].as_array().expect("items").clone()
    }
}

fn assert_text(r: &Resp, status: u16, body: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/html; charset=UTF-8")
    );
    assert_eq!(r.body, json!(body));
}

fn assert_page(r: &Resp, status: u16) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    let html = r.body.as_str().unwrap_or("");
    assert!(
        html.starts_with(&format!("<html><title>{status}: ")),
        "{html}"
    );
}

fn is_ec2_id(id: &str) -> bool {
    id.strip_prefix("i-")
        .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

on_each_backend!(#[tokio::test] async fn the_documents_operations_with_the_originals_arguments);
async fn the_documents_operations_with_the_originals_arguments() {
    let w = world().await;

    // Launch two at once; `ami` as the document spells it.
    let r = w
        .form(
            &w.leo,
            "/launch",
            "ami=ami-3d4ff254&instance_type=t1.micro&min_count=2&max_count=2",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/html; charset=UTF-8")
    );
    let ids: Vec<String> = r
        .body
        .as_array()
        .expect("list")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.iter().all(|i| is_ec2_id(i)), "{ids:?}");
    let (a, b) = (&ids[0], &ids[1]);
    let (ta, tb) = (w.timeline(a).await, w.timeline(b).await);
    assert_eq!(ta[0]["type"], "Created");
    assert_eq!(ta[0]["origin"], "launch-provision");
    assert_eq!(ta[0]["actor"], w.leo_id);
    assert_eq!(
        ta[0]["request_id"], tb[0]["request_id"],
        "one request, two creations"
    );
    assert_eq!(
        ta[0]["position"].as_u64().unwrap() + 1,
        tb[0]["position"].as_u64().unwrap()
    );

    // Attributes, polled until running: the 13 fields, EC2's codes and formats.
    let pending = w.leo(Method::GET, &format!("/{a}/attributes"), "").await;
    assert_eq!(pending.status, StatusCode::OK, "{}", pending.body);
    assert_eq!(
        (&pending.body["state"], &pending.body["state_code"]),
        (&json!("pending"), &json!(0))
    );
    let attrs = w.wait_for(a, "running").await;
    let mut keys: Vec<&str> = attrs
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "id",
            "image_id",
            "instance_type",
            "ip_address",
            "key_name",
            "launch_time",
            "placement",
            "placement_group",
            "private_dns_name",
            "private_ip_address",
            "public_dns_name",
            "state",
            "state_code"
        ]
    );
    assert_eq!(attrs["id"], a.as_str());
    assert_eq!(attrs["state_code"], 16);
    assert_eq!(attrs["instance_type"], "t1.micro");
    assert_eq!(attrs["image_id"], "ami-3d4ff254");
    assert_eq!(attrs["key_name"], "scalacity-dev1", "the default key");
    assert_eq!(attrs["placement"], "us-east-1b");
    assert_eq!(attrs["placement_group"], "");
    assert_eq!(attrs["ip_address"], Value::Null);
    let lt = attrs["launch_time"].as_str().unwrap();
    assert!(
        lt.len() == 24 && lt.ends_with(".000Z") && &lt[13..14] == ":" && &lt[10..11] == "T",
        "{lt}"
    );
    let r = w
        .leo(
            Method::GET,
            &format!("/{a}/attributes"),
            "filter=state,state_code",
        )
        .await;
    assert_eq!(r.body, json!({"state": "running", "state_code": 16}));
    let r = w
        .leo(Method::GET, &format!("/{a}/attributes"), "filter=bogus")
        .await;
    assert_eq!(r.body, json!({}));
    let r = w
        .leo(Method::GET, &format!("/{a}/attributes/state"), "")
        .await;
    assert_eq!(r.body, json!({"state": "running"}));
    let r = w
        .leo(Method::GET, &format!("/{a}/attributes/nope"), "")
        .await;
    assert_eq!(r.body, json!({}));

    // Stop: the original's body, then stopping and stopped.
    let r = w.leo(Method::PUT, &format!("/{a}/stop"), "").await;
    assert_text(&r, 200, &format!("{a} stop"));
    let r = w
        .leo(
            Method::GET,
            &format!("/{a}/attributes"),
            "filter=state,state_code",
        )
        .await;
    assert_eq!(r.body, json!({"state": "stopping", "state_code": 64}));
    w.wait_for(a, "stopped").await;
    // Stopping a stopped instance: EC2 says yes, nothing changes.
    let before = w.s.position().await;
    let r = w.leo(Method::PUT, &format!("/{a}/stop"), "").await;
    assert_text(&r, 200, &format!("{a} stop"));
    assert_eq!(w.s.position().await, before);

    // Modify while stopped, in either spelling.
    let r = w
        .form(
            &w.leo,
            &format!("/{a}/modify"),
            "attribute=instance_type&value=m1.small",
        )
        .await;
    assert_text(&r, 200, "Instance modification succeeded");
    let r = w
        .leo(
            Method::PUT,
            &format!("/{a}/modify"),
            "attribute=instanceInitiatedShutdownBehavior&value=stop",
        )
        .await;
    assert_text(&r, 200, "Instance modification succeeded");
    let r = w
        .leo(
            Method::PUT,
            &format!("/{a}/modify"),
            "attribute=user_data&value=IyEvYmluL3No",
        )
        .await;
    assert_text(&r, 200, "Instance modification succeeded");
    let r = w
        .leo(Method::GET, &format!("/{a}/attributes/instance_type"), "")
        .await;
    assert_eq!(r.body, json!({"instance_type": "m1.small"}));
    let native = w.s.get(&format!("/v1/instances/{a}")).await;
    assert_eq!(native.body["vcpus"], 2);
    assert_eq!(
        native.body["attributes"]["instance_initiated_shutdown_behavior"],
        "stop"
    );

    // Start, reboot.
    let r = w.leo(Method::PUT, &format!("/{a}/start"), "").await;
    assert_text(&r, 200, &format!("{a} start"));
    assert_eq!(
        w.leo(Method::GET, &format!("/{a}/attributes/state"), "")
            .await
            .body,
        json!({"state": "pending"})
    );
    w.wait_for(a, "running").await;
    let r = w.leo(Method::PUT, &format!("/{a}/reboot"), "").await;
    assert_text(&r, 200, &format!("{a} reboot"));
    assert_eq!(
        w.leo(Method::GET, &format!("/{a}/attributes/state"), "")
            .await
            .body,
        json!({"state": "running"}),
        "EC2 never shows a reboot"
    );

    // Terminate: shutting-down, then terminated, which stays readable; force at once.
    let r = w.leo(Method::PUT, &format!("/{b}/terminate"), "").await;
    assert_text(&r, 200, &format!("{b} terminate"));
    let r = w
        .leo(
            Method::GET,
            &format!("/{b}/attributes"),
            "filter=state,state_code",
        )
        .await;
    assert_eq!(r.body, json!({"state": "shutting-down", "state_code": 32}));
    let gone = w.wait_for(b, "terminated").await;
    assert_eq!(gone["state_code"], 48);
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.s.get(&format!("/v1/instances/{a}")).await.body["state"] != "running" {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let r = w
        .leo(Method::PUT, &format!("/{a}/terminate"), "force=true")
        .await;
    assert_text(&r, 200, &format!("{a} terminate"));
    let r = w
        .leo(Method::GET, &format!("/{a}/attributes/state"), "")
        .await;
    assert_eq!(r.body, json!({"state": "terminated"}), "forced: at once");

    // Terminated is final: starting it is EC2's IncorrectInstanceState, nothing appended.
    let before = w.s.position().await;
    let r = w.leo(Method::PUT, &format!("/{a}/start"), "").await;
    assert_eq!(r.status, StatusCode::REQUEST_TIMEOUT);
    let t = r.body.as_str().unwrap();
    assert!(
        t.starts_with(
            "Error while trying to stop instance via EC2 API. EC2ResponseError: 400 Bad Request\n"
        ),
        "{t}"
    );
    assert!(t.contains("<Code>IncorrectInstanceState</Code>"));
    // Terminating again and rebooting it are accepted and change nothing.
    assert_text(
        &w.leo(Method::PUT, &format!("/{a}/terminate"), "").await,
        200,
        &format!("{a} terminate"),
    );
    assert_text(
        &w.leo(Method::PUT, &format!("/{a}/reboot"), "").await,
        200,
        &format!("{a} reboot"),
    );
    assert_eq!(w.s.position().await, before);

    let types: Vec<(String, String)> = w
        .timeline(a)
        .await
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["origin"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let types: Vec<(&str, &str)> = types
        .iter()
        .map(|(t, o)| (t.as_str(), o.as_str()))
        .collect();
    assert_eq!(
        types,
        [
            ("Created", "launch-provision"),
            ("Provisioned", "driver"),
            ("StopRequested", "launch-provision"),
            ("Stopped", "driver"),
            ("Resized", "launch-provision"),
            ("Updated", "launch-provision"),
            ("Updated", "launch-provision"),
            ("StartRequested", "launch-provision"),
            ("Started", "driver"),
            ("RebootRequested", "launch-provision"),
            ("Rebooted", "driver"),
            ("Destroyed", "launch-provision"),
        ]
    );
}

on_each_backend!(#[tokio::test] async fn every_documented_refusal_in_the_originals_shape_appends_nothing);
async fn every_documented_refusal_in_the_originals_shape_appends_nothing() {
    let w = world().await;
    let id = w.launch("image_id=ami-3d4ff254&instance_type=t1.micro&placement=us-west-2a&placement_group=hpc&ebs_optimized=True").await.remove(0);
    let attrs = w.wait_for(&id, "running").await;
    assert_eq!(
        (&attrs["placement"], &attrs["placement_group"]),
        (&json!("us-west-2a"), &json!("hpc"))
    );
    let before = w.s.position().await;

    // Not authenticated: Tornado's page.
    for url in [
        format!("{API}/{id}/attributes"),
        format!("{API}/{id}/attributes?token={}", w.leo),
        format!("{API}/{id}/attributes?key=111&token=wrong"),
    ] {
        let r = Server::send(w.s.http(Method::GET, &url)).await;
        assert_page(&r, 401);
    }
    // The bearer header works as well as the argument pair.
    let r = Server::send(
        w.s.http(Method::GET, &format!("{API}/{id}/attributes/state"))
            .bearer_auth(&w.leo),
    )
    .await;
    assert_eq!(r.body, json!({"state": "running"}));

    // Launch: required arguments, then what EC2 would have refused.
    for args in [
        "instance_type=t1.micro",
        "ami=ami-3d4ff254",
        "ami=&instance_type=t1.micro",
        "image_id=ami-3d4ff254&instance_type=",
    ] {
        assert_text(
            &w.form(&w.leo, "/launch", args).await,
            400,
            "Required arguments not provided.",
        );
    }
    let r = Server::send(
        w.s.http(
            Method::PUT,
            &format!("{API}/launch?key=111&token={}", w.leo),
        )
        .json(&json!({"ami": "ami-3d4ff254", "instance_type": "t1.micro"})),
    )
    .await;
    assert_text(&r, 400, "Required arguments not provided.");
    let run_failed =
        "Error while trying to run instance.  Possible malformed request or unavailable endpoint.";
    for args in [
        "ami=ami-00000000&instance_type=t1.micro",
        "ami=ami-3d4ff254&instance_type=c9.huge",
        "ami=ami-3d4ff254&instance_type=t1.micro&min_count=3&max_count=2",
        "ami=ami-3d4ff254&instance_type=t1.micro&min_count=zero",
        "ami=ami-3d4ff254&instance_type=t1.micro&key_name=nobodys-key",
        "ami=ami-3d4ff254&instance_type=t1.micro&instance_initiated_shutdown_behavior=hibernate",
        "ami=ami-3d4ff254&instance_type=t1.micro&ebs_optimized=maybe",
        "ami=ami-3d4ff254&instance_type=t1.micro&min_count=101&max_count=200",
    ] {
        assert_text(&w.form(&w.leo, "/launch", args).await, 408, run_failed);
    }

    // Unknown ids, routes, methods.
    assert_text(
        &w.leo(Method::PUT, "/i-zzzzzzzz/stop", "").await,
        404,
        "Instance not found",
    );
    assert_text(
        &w.leo(Method::GET, "/i-zzzzzzzz/attributes", "").await,
        404,
        "Instance not found",
    );
    assert_page(&w.leo(Method::PUT, "/foo/start", "").await, 404);
    assert_page(
        &w.leo(Method::PUT, &format!("/{id}/hibernate"), "").await,
        404,
    );
    assert_page(&w.leo(Method::GET, "/launch", "").await, 405);
    // Another tenant's instance is not found.
    assert_text(
        &w.query(&w.eve, Method::PUT, &format!("/{id}/stop"), "")
            .await,
        404,
        "Instance not found",
    );

    // Modify: arguments first (even for an unknown id), then the state, then the value.
    assert_text(
        &w.leo(Method::PUT, "/i-zzzzzzzz/modify", "").await,
        408,
        "Required arguments attribute and value not provided",
    );
    assert_text(
        &w.leo(
            Method::PUT,
            &format!("/{id}/modify"),
            "attribute=instance_type&value=",
        )
        .await,
        408,
        "Required arguments attribute and value not provided",
    );
    assert_text(
        &w.leo(
            Method::PUT,
            &format!("/{id}/modify"),
            "attribute=instance_type&value=m1.small",
        )
        .await,
        408,
        "Instance must be stopped to modify attributes.",
    );
    assert_eq!(w.s.position().await, before, "no refusal appended anything");
    // Illegal transition: starting a pending instance is fine, rebooting it is not.
    let fresh = w
        .launch("ami=ami-3d4ff254&instance_type=t1.micro")
        .await
        .remove(0);
    let r = w.leo(Method::PUT, &format!("/{fresh}/reboot"), "").await;
    assert_eq!(r.status, StatusCode::REQUEST_TIMEOUT, "{}", r.body);
    assert_text(
        &w.leo(Method::PUT, &format!("/{fresh}/start"), "").await,
        200,
        &format!("{fresh} start"),
    );
    let asked: Vec<Value> = w
        .timeline(&fresh)
        .await
        .into_iter()
        .filter(|e| e["origin"] == "launch-provision")
        .collect();
    assert_eq!(
        asked.len(),
        1,
        "the refusal and the no-op appended nothing: {asked:?}"
    );
    w.wait_for(&fresh, "running").await;

    let r = w
        .leo(Method::PUT, &format!("/{id}/stop"), "force=true")
        .await;
    assert_text(&r, 200, &format!("{id} stop"));
    assert_eq!(
        w.leo(Method::GET, &format!("/{id}/attributes/state"), "")
            .await
            .body,
        json!({"state": "stopped"}),
        "a forced stop is at once"
    );
    let after_stop = w.s.position().await;
    assert_text(
        &w.leo(
            Method::PUT,
            &format!("/{id}/modify"),
            "attribute=kernel&value=aki-1",
        )
        .await,
        408,
        "Instance modification failed.",
    );
    assert_text(
        &w.leo(
            Method::PUT,
            &format!("/{id}/modify"),
            "attribute=instance_type&value=c9.huge",
        )
        .await,
        408,
        "Instance modification failed.",
    );
    assert_eq!(w.s.position().await, after_stop);
}

on_each_backend!(#[tokio::test] async fn the_same_instances_natively_through_mogan_and_here);
async fn the_same_instances_natively_through_mogan_and_here() {
    let w = world().await;
    let id = w
        .launch("ami=ami-3d4ff254&instance_type=t1.micro")
        .await
        .remove(0);
    w.wait_for(&id, "running").await;
    // Natively, by its short id; its name is its id.
    let native = w.s.get(&format!("/v1/instances/{id}")).await;
    assert_eq!(native.body["name"], id.as_str());
    assert_eq!(native.body["state"], "running");
    let uuid = native.id();
    let r =
        w.s.post(&format!("/v1/instances/{uuid}/stop"), json!({}))
            .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    w.wait_for(&id, "stopped").await;
    // Through Mogan (leo's only project).
    let r = Server::send(
        w.s.http(
            Method::PUT,
            &format!("/mogan/v1/servers/{uuid}/states/power"),
        )
        .header("X-Auth-Token", &w.leo)
        .json(&json!({"target": "on"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    w.wait_for(&id, "running").await;

    // Made natively, operated here.
    let flavor = w.s.get("/v1/flavors").await.body["items"][0]["id"].clone();
    let image = w.s.get("/v1/images").await.body["items"][0]["id"].clone();
    let r = w
        .s
        .post(
            "/v1/instances",
            json!({"name": "native", "project_id": w.project, "flavor_id": flavor, "image_id": image}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let short = r.body["short_id"].as_str().unwrap().to_string();
    w.wait_for(&short, "running").await;
    let r = w.leo(Method::PUT, &format!("/{short}/terminate"), "").await;
    assert_text(&r, 200, &format!("{short} terminate"));
    w.wait_for(&short, "terminated").await;
    let origins: Vec<String> = w
        .timeline(&short)
        .await
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["type"].as_str().unwrap(),
                e["origin"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        origins,
        [
            "Created:native",
            "Provisioned:driver",
            "DestroyRequested:launch-provision",
            "Destroyed:driver"
        ]
    );
}
