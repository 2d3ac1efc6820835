//! The Mogan dialect as its clients met it (seed 001): every operation of the seed
//! document as it shows it, the September 2017 `servers` spelling as python-moganclient
//! 0.1.0 sends it, the states a polling client sees, the same instances natively and
//! through NodeConductor, and every documented refusal in the original's wrapping, with
//! nothing appended.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Resp, Server};

struct World {
    s: Server,
    /// Project administrator of `project` (their only project).
    mia: String,
    mia_id: String,
    /// A manager of the project: may read, may not operate.
    max: String,
    /// No role anywhere.
    nobody: String,
    project: String,
    flavor: String,
    image: String,
    net1: String,
    net2: String,
}

fn hex(id: &str) -> String {
    id.replace('-', "")
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
    let customer = post("/v1/customers", json!({"name": "Beijing DC"})).await;
    let project = post(
        "/v1/projects",
        json!({"name": "baremetal", "customer_id": customer}),
    )
    .await;
    let flavor = post(
        "/v1/flavors",
        json!({"name": "bm.small", "vcpus": 8, "memory_mb": 16384, "disk_gb": 200}),
    )
    .await;
    let image = post("/v1/images", json!({"name": "ubuntu-16.04"})).await;
    let net1 = post(
        "/v1/networks",
        json!({"name": "private", "cidr": "10.1.0.0/24"}),
    )
    .await;
    let net2 = post(
        "/v1/networks",
        json!({"name": "storage", "cidr": "10.2.0.0/24"}),
    )
    .await;
    let (mia_id, mia) = s.user("mia", false).await;
    let (max_id, max) = s.user("max", false).await;
    let (_, nobody) = s.user("nobody", false).await;
    for (user, role) in [(&mia_id, "administrator"), (&max_id, "manager")] {
        let r = s
            .post(
                &format!("/v1/projects/{project}/members"),
                json!({"user_id": user, "role": role}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    World {
        s,
        mia,
        mia_id,
        max,
        nobody,
        project,
        flavor,
        image,
        net1,
        net2,
    }
}

impl World {
    /// A request as the client sends it: `X-Auth-Token`, JSON both ways.
    async fn call(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut req = self
            .s
            .http(method, path)
            .header("X-Auth-Token", token)
            .header("Accept", "application/json");
        if let Some(b) = body {
            req = req.json(&b);
        }
        Server::send(req).await
    }

    async fn mia(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.call(&self.mia, method, path, body).await
    }

    /// The seed's create sample (`doc/api_samples/instances/instance-create-req.json`),
    /// with this server's ids.
    fn seed_create(&self, name: &str) -> Value {
        json!({
            "name": name,
            "description": "this is a test instance",
            "instance_type_uuid": self.flavor,
            "image_uuid": self.image,
            "availability_zone": "Beijing-01",
            "networks": [{"uuid": self.net1}, {"uuid": self.net2, "port_type": "10GE"}]
        })
    }

    async fn create(&self, name: &str) -> String {
        let r = self
            .mia(
                Method::POST,
                "/mogan/instances",
                Some(self.seed_create(name)),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["uuid"].as_str().expect("uuid").to_string()
    }

    /// Polls `GET .../{uuid}` as a Mogan client would, until `status`.
    async fn wait_for(&self, collection: &str, uuid: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self
                .mia(Method::GET, &format!("/mogan/v1/{collection}/{uuid}"), None)
                .await;
            if r.body["status"] == status {
                return r.body;
            }
            assert!(
                Instant::now() < deadline,
                "{uuid} never {status}: {}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn wait_gone(&self, collection: &str, uuid: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self
                .mia(Method::GET, &format!("/mogan/v1/{collection}/{uuid}"), None)
                .await;
            if r.status == StatusCode::NOT_FOUND {
                return;
            }
            assert!(Instant::now() < deadline, "{uuid} never went: {}", r.body);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// (type, origin) of each event of the instance's native timeline.
    async fn timeline(&self, uuid: &str) -> Vec<(String, String, String)> {
        let r = self.s.get(&format!("/v1/instances/{uuid}/events")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| {
                let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
                (s("type"), s("origin"), s("actor"))
            })
            .collect()
    }
}

/// The wsme fault inside `error_message`, parsed as the client parses it.
fn fault(r: &Resp) -> Value {
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json"),
        "{}",
        r.body
    );
    let inner = r.body["error_message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error_message in {}", r.body));
    serde_json::from_str(inner).unwrap_or_else(|e| panic!("{inner}: {e}"))
}

fn assert_fault(r: &Resp, status: u16, faultstring: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    let f = fault(r);
    let code = if status >= 500 { "Server" } else { "Client" };
    assert_eq!(f["faultcode"], code, "{f}");
    assert_eq!(f["debuginfo"], Value::Null, "{f}");
    assert_eq!(f["faultstring"], faultstring, "{f}");
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    k.sort();
    k
}

fn python_iso(v: &Value) -> bool {
    // 2016-09-27T02:37:21.966342+00:00 (microseconds dropped when zero)
    let s = v.as_str().unwrap_or("");
    s.len() >= 25 && s.ends_with("+00:00") && s.as_bytes()[10] == b'T'
}

on_each_backend!(#[tokio::test] async fn the_seed_document_operation_by_operation);
async fn the_seed_document_operation_by_operation() {
    let w = world().await;

    // Create, as `POST /instances` with the seed's body (the bare mount, as the seed wrote).
    let r = w
        .mia(
            Method::POST,
            "/mogan/instances",
            Some(w.seed_create("test_instance")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let i = r.body.clone();
    let uuid = i["uuid"].as_str().expect("uuid").to_string();
    let base = format!("{}/mogan", w.s.base);
    assert_eq!(
        r.header("location"),
        Some(format!("{base}/v1/instances/{uuid}"))
    );
    assert!(
        r.header("openstack-request-id")
            .is_some_and(|id| id.starts_with("req-"))
    );
    assert_eq!(
        keys(&i),
        sorted(&[
            "uuid",
            "name",
            "description",
            "project_id",
            "user_id",
            "status",
            "power_state",
            "task_state",
            "target_power_state",
            "availability_zone",
            "instance_type_uuid",
            "image_uuid",
            "network_info",
            "links",
            "launched_at",
            "extra",
            "created_at",
            "updated_at"
        ])
    );
    assert_eq!(
        (&i["name"], &i["description"], &i["availability_zone"]),
        (
            &json!("test_instance"),
            &json!("this is a test instance"),
            &json!("Beijing-01")
        )
    );
    assert_eq!(i["status"], "building");
    assert_eq!(i["power_state"], Value::Null);
    assert_eq!(i["target_power_state"], "power on");
    assert_eq!(i["task_state"], Value::Null);
    assert_eq!(i["project_id"], hex(&w.project));
    assert_eq!(i["user_id"], hex(&w.mia_id));
    assert_eq!(
        (&i["instance_type_uuid"], &i["image_uuid"]),
        (&json!(w.flavor), &json!(w.image))
    );
    assert_eq!(
        i["links"],
        json!([
            {"href": format!("{base}/v1/instances/{uuid}"), "rel": "self"},
            {"href": format!("{base}/instances/{uuid}"), "rel": "bookmark"}
        ])
    );
    assert!(python_iso(&i["created_at"]), "{}", i["created_at"]);
    assert_eq!(i["updated_at"], Value::Null);
    let ports = i["network_info"].as_object().expect("network_info");
    assert_eq!(ports.len(), 2);
    let mut networks: Vec<&str> = ports
        .values()
        .map(|p| p["network"].as_str().unwrap())
        .collect();
    networks.sort();
    let mut want = vec![w.net1.as_str(), w.net2.as_str()];
    want.sort();
    assert_eq!(networks, want);
    let first = ports
        .values()
        .find(|p| p["network"] == w.net1.as_str())
        .unwrap();
    let ip = first["fixed_ip"]
        .as_str()
        .expect("an address on the first network");
    assert!(ip.starts_with("10.1.0."), "{ip}");
    assert_eq!(first["fixed_ips"][0]["ip_address"], ip);
    assert!(
        first["mac_address"]
            .as_str()
            .unwrap()
            .starts_with("fa:16:3e:")
    );

    // The client polls until the build is done.
    let active = w.wait_for("instances", &uuid, "active").await;
    assert_eq!(active["power_state"], "power on");
    assert_eq!(active["target_power_state"], Value::Null);
    assert!(python_iso(&active["launched_at"]));
    assert!(python_iso(&active["updated_at"]));
    assert_eq!(
        active["network_info"], i["network_info"],
        "ports are stable"
    );

    // State summary (seed fields and the mature ones).
    let states = format!("/mogan/v1/instances/{uuid}/states");
    let r = w.mia(Method::GET, &states, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body,
        json!({"power_state": "power on", "target_power_state": null, "status": "active", "locked": false})
    );

    // Power off: 202, empty, Location of the states; target set until the completion.
    let r = w
        .mia(
            Method::PUT,
            &format!("{states}/power"),
            Some(json!({"target": "off"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body, Value::Null, "empty body");
    assert_eq!(
        r.header("location"),
        Some(format!("{base}/v1/instances/{uuid}/states"))
    );
    let r = w.mia(Method::GET, &states, None).await;
    assert_eq!(r.body["target_power_state"], "power off");
    assert_eq!(r.body["status"], "powering-off");
    let stopped = w.wait_for("instances", &uuid, "stopped").await;
    assert_eq!(stopped["power_state"], "power off");
    assert_eq!(stopped["target_power_state"], Value::Null);

    // The seed's own sample spelling of the target.
    let r = w
        .mia(
            Method::PUT,
            &format!("{states}/power"),
            Some(json!({"target": "power on"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(
        w.mia(Method::GET, &states, None).await.body["status"],
        "powering-on"
    );
    w.wait_for("instances", &uuid, "active").await;
    let r = w
        .mia(
            Method::PUT,
            &format!("{states}/power"),
            Some(json!({"target": "reboot"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(
        w.mia(Method::GET, &states, None).await.body["target_power_state"],
        "rebooting"
    );
    w.wait_for("instances", &uuid, "active").await;

    // Lists: default fields, `fields`, detail; both mounts answer alike.
    let r = w.mia(Method::GET, "/mogan/v1/instances", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let items = r.body["instances"].as_array().expect("instances");
    assert_eq!(items.len(), 1);
    assert_eq!(
        keys(&items[0]),
        sorted(&[
            "uuid",
            "name",
            "description",
            "status",
            "power_state",
            "links"
        ])
    );
    assert_eq!(
        w.mia(Method::GET, "/mogan/instances", None).await.body,
        r.body
    );
    let r = w
        .mia(Method::GET, "/mogan/v1/instances?fields=name,Status", None)
        .await;
    assert_eq!(
        keys(&r.body["instances"][0]),
        sorted(&["name", "status", "links"])
    );
    let r = w.mia(Method::GET, "/mogan/v1/instances/detail", None).await;
    assert_eq!(r.body["instances"][0]["network_info"], i["network_info"]);
    let r = w
        .mia(
            Method::GET,
            &format!("/mogan/v1/instances/{uuid}?fields=uuid,power_state"),
            None,
        )
        .await;
    assert_eq!(keys(&r.body), sorted(&["uuid", "power_state", "links"]));

    // JSON Patch of the mature API.
    let r = w
        .mia(
            Method::PATCH,
            &format!("/mogan/v1/instances/{uuid}"),
            Some(json!([
                {"op": "replace", "path": "/name", "value": "renamed"},
                {"op": "add", "path": "/extra/rack", "value": "r12"}
            ])),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (&r.body["name"], &r.body["extra"]),
        (&json!("renamed"), &json!({"rack": "r12"}))
    );

    // Delete: 204, `deleting`, then gone.
    let r = w
        .mia(Method::DELETE, &format!("/mogan/v1/instances/{uuid}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(
        w.mia(Method::GET, &format!("/mogan/v1/instances/{uuid}"), None)
            .await
            .body["status"],
        "deleting"
    );
    w.wait_gone("instances", &uuid).await;
    let r = w
        .mia(Method::GET, &format!("/mogan/v1/instances/{uuid}"), None)
        .await;
    assert_fault(&r, 404, &format!("Instance {uuid} could not be found."));
    let r = w.mia(Method::GET, "/mogan/v1/instances", None).await;
    assert_eq!(r.body, json!({"instances": []}));

    // The native timeline has every request, with the dialect as origin and mia as actor.
    let timeline = w.timeline(&uuid).await;
    let types: Vec<(&str, &str)> = timeline
        .iter()
        .map(|(t, o, _)| (t.as_str(), o.as_str()))
        .collect();
    assert_eq!(
        types,
        [
            ("Created", "mogan"),
            ("Provisioned", "driver"),
            ("StopRequested", "mogan"),
            ("Stopped", "driver"),
            ("StartRequested", "mogan"),
            ("Started", "driver"),
            ("RebootRequested", "mogan"),
            ("Rebooted", "driver"),
            ("Updated", "mogan"),
            ("DestroyRequested", "mogan"),
            ("Destroyed", "driver"),
        ]
    );
    assert!(
        timeline
            .iter()
            .filter(|(_, o, _)| o == "mogan")
            .all(|(_, _, actor)| *actor == w.mia_id)
    );
}

on_each_backend!(#[tokio::test] async fn the_servers_spelling_as_python_moganclient_speaks_it);
async fn the_servers_spelling_as_python_moganclient_speaks_it() {
    let w = world().await;
    let r = w
        .s
        .post(
            "/v1/ssh-keys",
            json!({"name": "mia-key", "public_key": "ssh-ed25519 AAAAC3Nz mia@laptop", "user_id": w.mia_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // `openstack baremetalcompute server create`: the endpoint already ends in /v1.
    let body = json!({"server": {
        "name": "s1", "description": "first", "image_uuid": w.image, "flavor_uuid": w.flavor,
        "networks": [{"net_id": w.net1}], "key_name": "mia-key",
        "availability_zone": "az1", "metadata": {"owner": "ops team"}
    }});
    let r = w.mia(Method::POST, "/mogan/v1/servers", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let server = r.body.clone();
    let uuid = server["uuid"].as_str().expect("bare object").to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("{}/mogan/v1/servers/{uuid}", w.s.base))
    );
    let nineteen = sorted(&[
        "uuid",
        "name",
        "description",
        "project_id",
        "user_id",
        "status",
        "power_state",
        "availability_zone",
        "flavor_uuid",
        "image_uuid",
        "addresses",
        "links",
        "launched_at",
        "metadata",
        "key_name",
        "partitions",
        "locked",
        "created_at",
        "updated_at",
    ]);
    assert_eq!(keys(&server), nineteen);
    assert_eq!(server["status"], "building");
    assert_eq!(server["key_name"], "mia-key");
    assert_eq!(server["metadata"], json!({"owner": "ops team"}));
    assert_eq!(server["partitions"], json!({}));
    assert_eq!(server["locked"], json!(false));
    let addr = &server["addresses"][&w.net1][0];
    assert_eq!(addr["type"], "fixed");
    assert!(addr["addr"].as_str().unwrap().starts_with("10.1.0."));
    w.wait_for("servers", &uuid, "active").await;

    // `server list` (always detail) and `server show`.
    let r = w.mia(Method::GET, "/mogan/v1/servers/detail", None).await;
    let items = r.body["servers"].as_array().expect("servers");
    assert_eq!(items.len(), 1);
    assert_eq!(keys(&items[0]), nineteen);
    let r = w.mia(Method::GET, "/mogan/v1/servers", None).await;
    assert_eq!(
        keys(&r.body["servers"][0]),
        sorted(&[
            "uuid",
            "name",
            "description",
            "status",
            "power_state",
            "links"
        ])
    );
    for (query, n) in [
        ("name=s", 1),
        ("name=zz", 0),
        ("status=active", 1),
        ("status=stopped", 0),
    ] {
        let r = w
            .mia(Method::GET, &format!("/mogan/v1/servers?{query}"), None)
            .await;
        assert_eq!(
            r.body["servers"].as_array().map(Vec::len),
            Some(n),
            "{query}"
        );
    }

    // `server set/unset`: the JSON Patch the client builds.
    let r = w
        .mia(
            Method::PATCH,
            &format!("/mogan/v1/servers/{uuid}"),
            Some(json!([
                {"op": "replace", "path": "/name", "value": "s1-renamed"},
                {"op": "remove", "path": "/description"},
                {"op": "add", "path": "/metadata/tier", "value": "gold"},
                {"op": "remove", "path": "/metadata/owner"}
            ])),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["name"], "s1-renamed");
    assert_eq!(r.body["description"], Value::Null);
    assert_eq!(r.body["metadata"], json!({"tier": "gold"}));

    // The catalog the client reads.
    let r = w.mia(Method::GET, "/mogan/v1/flavors", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let f = &r.body["flavors"][0];
    assert_eq!(
        keys(f),
        sorted(&["uuid", "name", "description", "is_public", "links"])
    );
    assert_eq!(
        (&f["uuid"], &f["name"]),
        (&json!(w.flavor), &json!("bm.small"))
    );
    let r = w
        .mia(
            Method::GET,
            &format!("/mogan/v1/flavors/{}", w.flavor),
            None,
        )
        .await;
    assert_eq!(r.body["resources"]["VCPU"], 8);
    let r = w
        .mia(Method::GET, "/mogan/v1/availability_zones", None)
        .await;
    assert_eq!(r.body, json!({"availability_zones": ["az1"]}));

    // Lock: power and delete refused to the owner; staff are not held back.
    let lock = format!("/mogan/v1/servers/{uuid}/states/lock");
    let power = format!("/mogan/v1/servers/{uuid}/states/power");
    let r = w
        .mia(Method::PUT, &lock, Some(json!({"target": true})))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(
        w.mia(Method::GET, &format!("/mogan/v1/servers/{uuid}"), None)
            .await
            .body["locked"],
        true
    );
    let before = w.s.position().await;
    let r = w
        .mia(Method::PUT, &power, Some(json!({"target": "off"})))
        .await;
    assert_fault(&r, 400, &format!("Server {uuid} is locked"));
    let r = w
        .mia(Method::DELETE, &format!("/mogan/v1/servers/{uuid}"), None)
        .await;
    assert_fault(&r, 400, &format!("Server {uuid} is locked"));
    assert_eq!(w.s.position().await, before, "refusals append nothing");
    // An admin's lock is the admin's: the owner cannot lift it (403), staff can.
    let admin = instance_ledger_admin_token();
    let r = w
        .call(&admin, Method::PUT, &lock, Some(json!({"target": "True"})))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let r = w
        .mia(Method::PUT, &lock, Some(json!({"target": false})))
        .await;
    assert_fault(&r, 403, "Forbidden");
    let r = w
        .call(
            &admin,
            Method::PUT,
            &power,
            Some(json!({"target": "soft_off"})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "staff are not held back: {}",
        r.body
    );
    w.wait_for("servers", &uuid, "stopped").await;
    let r = w
        .call(&admin, Method::PUT, &lock, Some(json!({"target": "0"})))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);

    let r = w
        .mia(Method::DELETE, &format!("/mogan/v1/servers/{uuid}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    w.wait_gone("servers", &uuid).await;
    let types: Vec<String> = w.timeline(&uuid).await.into_iter().map(|t| t.0).collect();
    assert_eq!(
        types,
        [
            "Created",
            "Provisioned",
            "Updated",
            "Locked",
            "Locked",
            "StopRequested",
            "Stopped",
            "Unlocked",
            "DestroyRequested",
            "Destroyed"
        ]
    );
}

fn instance_ledger_admin_token() -> String {
    crate::harness::TOKEN.to_string()
}

on_each_backend!(#[tokio::test] async fn every_documented_refusal_in_the_originals_wrapping_appends_nothing);
async fn every_documented_refusal_in_the_originals_wrapping_appends_nothing() {
    let w = world().await;
    let uuid = w.create("victim").await;
    w.wait_for("instances", &uuid, "active").await;
    let states = format!("/mogan/v1/instances/{uuid}/states");
    let before = w.s.position().await;

    // Not authenticated: keystonemiddleware's own body, not wrapped.
    for token in [None, Some("not-a-token"), Some("lt_0_0")] {
        let mut req = w.s.http(Method::GET, "/mogan/v1/instances");
        if let Some(t) = token {
            req = req.header("X-Auth-Token", t);
        }
        let r = Server::send(req).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(
            r.body,
            json!({"error": {"code": 401, "title": "Unauthorized",
                "message": "The request you have made requires authentication."}})
        );
        assert!(
            r.header("www-authenticate")
                .is_some_and(|h| h.starts_with("Keystone uri="))
        );
    }

    // (what, method, path, body, status, faultstring)
    type Case = (&'static str, Method, String, Option<Value>, u16, String);
    let cases: Vec<Case> = vec![
        (
            "unknown id",
            Method::GET,
            "/mogan/v1/instances/6c3a4a1e-0000-4000-8000-000000000000".into(),
            None,
            404,
            "Instance 6c3a4a1e-0000-4000-8000-000000000000 could not be found.".into(),
        ),
        (
            "not a uuid",
            Method::PUT,
            "/mogan/v1/servers/foo/states/power".into(),
            Some(json!({"target": "on"})),
            404,
            "Server foo could not be found.".into(),
        ),
        (
            "missing argument",
            Method::PUT,
            format!("{states}/power"),
            Some(json!({})),
            400,
            "Missing argument: \"target\"".into(),
        ),
        (
            "unknown argument",
            Method::PUT,
            format!("{states}/power"),
            Some(json!({"target": "off", "force": true})),
            400,
            "Unknown argument: \"force\"".into(),
        ),
        (
            "unknown target",
            Method::PUT,
            format!("{states}/power"),
            Some(json!({"target": "hibernate"})),
            400,
            format!("The Parameter value: hibernate for power action of instance {uuid} is invalid."),
        ),
        (
            "invalid state",
            Method::PUT,
            format!("{states}/power"),
            Some(json!({"target": "on"})),
            400,
            "Can not transition from state 'active' on event 'start' (no defined transition)"
                .into(),
        ),
        (
            "bad lock target",
            Method::PUT,
            format!("{states}/lock"),
            Some(json!({"target": "maybe"})),
            400,
            "Invalid input for field/attribute target. Value: 'maybe'. Unrecognized value 'maybe', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'".into(),
        ),
        (
            "missing name",
            Method::POST,
            "/mogan/v1/instances".into(),
            Some(json!({"image_uuid": w.image, "instance_type_uuid": w.flavor, "networks": [{"uuid": w.net1}]})),
            400,
            "Invalid create body: 'name' is a required property".into(),
        ),
        (
            "unknown field (strict schema)",
            Method::POST,
            "/mogan/v1/instances".into(),
            Some({
                let mut b = w.seed_create("x");
                b["flavor_id"] = json!(w.flavor);
                b
            }),
            400,
            "Invalid create body: Additional properties are not allowed ('flavor_id' was unexpected)".into(),
        ),
        (
            "wrong type",
            Method::POST,
            "/mogan/v1/instances".into(),
            Some({
                let mut b = w.seed_create("x");
                b["name"] = json!(5);
                b
            }),
            400,
            "Invalid create body: 5 is not of type 'string'".into(),
        ),
        (
            "no networks",
            Method::POST,
            "/mogan/v1/instances".into(),
            Some({
                let mut b = w.seed_create("x");
                b["networks"] = json!([]);
                b
            }),
            400,
            "Invalid create body: [] is too short".into(),
        ),
        (
            "unknown flavor",
            Method::POST,
            "/mogan/v1/instances".into(),
            Some({
                let mut b = w.seed_create("x");
                b["instance_type_uuid"] = json!("0607b5f3-6111-424d-ba46-f5de39a6fa69");
                b
            }),
            400,
            "Flavor 0607b5f3-6111-424d-ba46-f5de39a6fa69 could not be found".into(),
        ),
        (
            "unknown image",
            Method::POST,
            "/mogan/v1/instances".into(),
            Some({
                let mut b = w.seed_create("x");
                b["image_uuid"] = json!("efe0a06f-ca95-4808-b41e-9f55b9c5eb98");
                b
            }),
            400,
            "Requested image efe0a06f-ca95-4808-b41e-9f55b9c5eb98 could not be found".into(),
        ),
        (
            "unknown image (servers)",
            Method::POST,
            "/mogan/v1/servers".into(),
            Some(json!({"server": {"name": "x", "image_uuid": "efe0a06f-ca95-4808-b41e-9f55b9c5eb98",
                "flavor_uuid": w.flavor, "networks": [{"net_id": w.net1}]}})),
            404,
            "Image efe0a06f-ca95-4808-b41e-9f55b9c5eb98 could not be found.".into(),
        ),
        (
            "unknown network",
            Method::POST,
            "/mogan/v1/instances".into(),
            Some({
                let mut b = w.seed_create("x");
                b["networks"] = json!([{"uuid": "c1940655-8b8e-4370-b8f9-03ba1daeca31"}]);
                b
            }),
            400,
            "Network c1940655-8b8e-4370-b8f9-03ba1daeca31 could not be found.".into(),
        ),
        (
            "internal attribute",
            Method::PATCH,
            format!("/mogan/v1/instances/{uuid}"),
            Some(json!([{"op": "replace", "path": "/status", "value": "active"}])),
            400,
            "'/status' is an internal attribute and can not be updated".into(),
        ),
        (
            "unknown list argument",
            Method::GET,
            "/mogan/v1/instances/detail?fields=name".into(),
            None,
            400,
            "Unknown argument: \"fields\"".into(),
        ),
    ];
    for (what, method, path, body, status, text) in cases {
        let r = w.mia(method, &path, body).await;
        assert_eq!(r.status.as_u16(), status, "{what}: {}", r.body);
        assert_fault(&r, status, &text);
    }
    // Malformed JSON: a client fault, whatever the parser said.
    let r = Server::send(
        w.s.http(Method::POST, "/mogan/v1/instances")
            .header("X-Auth-Token", &w.mia)
            .header("Content-Type", "application/json")
            .body("{\"name\": \"x\",}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(fault(&r)["faultcode"], "Client");

    // Not permitted: a manager reads but may not operate; a stranger does not see it.
    let r = w.call(&w.max, Method::GET, &states, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = w
        .call(
            &w.max,
            Method::PUT,
            &format!("{states}/power"),
            Some(json!({"target": "off"})),
        )
        .await;
    assert_fault(
        &r,
        403,
        "Access was denied to the following resource: mogan:instance:set_power_state",
    );
    let r = w
        .call(
            &w.nobody,
            Method::DELETE,
            &format!("/mogan/v1/instances/{uuid}"),
            None,
        )
        .await;
    assert_fault(&r, 404, &format!("Instance {uuid} could not be found."));
    // No project to work in: in none, or staff without X-Project-Id.
    let r = w
        .call(&w.nobody, Method::GET, "/mogan/v1/instances", None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let admin = instance_ledger_admin_token();
    let r = w.call(&admin, Method::GET, "/mogan/v1/servers", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = Server::send(
        w.s.http(Method::GET, "/mogan/v1/servers")
            .header("X-Auth-Token", &admin)
            .header("X-Project-Id", hex(&w.project)),
    )
    .await;
    assert_eq!(r.body["servers"].as_array().map(Vec::len), Some(1));
    let r = w
        .call(
            &admin,
            Method::GET,
            "/mogan/v1/servers?all_tenants=True",
            None,
        )
        .await;
    assert_eq!(r.body["servers"].as_array().map(Vec::len), Some(1));
    // A non-admin's all_tenants is their own project, silently.
    let r = w
        .call(&w.max, Method::GET, "/mogan/v1/servers?all_tenants=1", None)
        .await;
    assert_eq!(r.body["servers"].as_array().map(Vec::len), Some(1));

    // pecan's own 404 and 405, wrapped.
    let r = w.mia(Method::GET, "/mogan/v1/nodes", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(fault(&r)["title"], "Not Found");
    let r = w.mia(Method::POST, &states, None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(fault(&r)["code"], "405 Method Not Allowed");
    assert!(r.header("allow").is_some_and(|a| a.contains("GET")));

    assert_eq!(w.s.position().await, before, "no refusal appended anything");

    // An operation already in progress: 409.
    let r = w
        .mia(
            Method::PUT,
            &format!("{states}/power"),
            Some(json!({"target": "off"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let after_off = w.s.position().await;
    let r = w
        .mia(
            Method::PUT,
            &format!("{states}/power"),
            Some(json!({"target": "off"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(
        fault(&r)["faultstring"]
            .as_str()
            .unwrap()
            .contains("already in progress")
    );
    assert_eq!(w.s.position().await, after_off);

    // The public version documents need no token.
    let r = Server::send(w.s.http(Method::GET, "/mogan/")).await;
    assert_eq!(r.body["name"], "OpenStack Mogan API");
    let r = Server::send(w.s.http(Method::GET, "/mogan/v1")).await;
    assert_eq!(r.body["id"], "v1");
}

on_each_backend!(#[tokio::test] async fn the_same_instances_natively_through_nodeconductor_and_here);
async fn the_same_instances_natively_through_nodeconductor_and_here() {
    let w = world().await;
    // Made here, read and operated natively and through NodeConductor.
    let uuid = w.create("from-mogan").await;
    w.wait_for("instances", &uuid, "active").await;
    let native = w.s.get(&format!("/v1/instances/{uuid}")).await;
    assert_eq!(native.status, StatusCode::OK);
    assert_eq!(
        (&native.body["name"], &native.body["state"]),
        (&json!("from-mogan"), &json!("running"))
    );
    let nc = |method: Method, path: String| {
        let req =
            w.s.http(method, &format!("/nodeconductor/api{path}"))
                .header("Authorization", format!("Token {}", w.mia));
        Server::send(req)
    };
    let r = nc(Method::GET, format!("/instances/{}/", hex(&uuid))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], "Online");
    let r = nc(Method::POST, format!("/instances/{}/stop/", hex(&uuid))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    w.wait_for("instances", &uuid, "stopped").await;
    let r =
        w.s.post(&format!("/v1/instances/{uuid}/start"), json!({}))
            .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    w.wait_for("servers", &uuid, "active").await;

    // Made natively, operated here.
    let mut body = json!({"name": "from-native", "project_id": w.project,
        "flavor_id": w.flavor, "image_id": w.image, "network_ids": [w.net1]});
    body["attributes"] = json!({"team": "db"});
    let r = w.s.post("/v1/instances", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let native_id = r.id();
    w.wait_for("servers", &native_id, "active").await;
    let r = w
        .mia(Method::GET, &format!("/mogan/v1/servers/{native_id}"), None)
        .await;
    assert_eq!(r.body["metadata"], json!({"team": "db"}));
    let r = w
        .mia(
            Method::PUT,
            &format!("/mogan/v1/servers/{native_id}/states/power"),
            Some(json!({"target": "off"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    w.s.wait_for_state(&native_id, "stopped").await;
    let r = w.mia(Method::GET, "/mogan/v1/servers/detail", None).await;
    let mut names: Vec<&str> = r.body["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["from-mogan", "from-native"]);
    let origins: Vec<String> = w
        .timeline(&native_id)
        .await
        .into_iter()
        .map(|(t, o, _)| format!("{t}:{o}"))
        .collect();
    assert_eq!(
        origins,
        [
            "Created:native",
            "Provisioned:driver",
            "StopRequested:mogan",
            "Stopped:driver"
        ]
    );
}
