//! The Wakame dialect as its clients met it (seed 004): every operation of the wiki page
//! and the code's stop and start, with the account header, JSON (wrapped, on `.json`
//! paths) and form parameters; the states a polling client sees; the list's paging and
//! grace period; the same instances natively and through Launch & Provision; every
//! documented error in dcmgr's shape with nothing appended.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Resp, Server};

const API: &str = "/wakame/api";

struct World {
    s: Server,
    /// Owner of the account (customer) `account`, which has one project.
    kai: String,
    kai_id: String,
    /// Owner of another account.
    zoe: String,
    zoe_id: String,
    account: String,
    other_account: String,
    image: String,
    spec: String,
    network: String,
    group: String,
    key: String,
}

fn hex(id: &str) -> String {
    id.replace('-', "")
}

async fn world(extra: &[&str]) -> World {
    let mut args = vec!["--driver-delay-ms", "300"];
    args.extend_from_slice(extra);
    let s = Server::start(&args);
    let post = |path: &'static str, body: Value| {
        let s = &s;
        async move {
            let r = s.post(path, body).await;
            assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.body);
            r.id()
        }
    };
    let account = post("/v1/customers", json!({"name": "kai's account"})).await;
    post(
        "/v1/projects",
        json!({"name": "default", "customer_id": account}),
    )
    .await;
    let other_account = post("/v1/customers", json!({"name": "zoe's account"})).await;
    post(
        "/v1/projects",
        json!({"name": "default", "customer_id": other_account}),
    )
    .await;
    let image = post("/v1/images", json!({"name": "lucid5"})).await;
    let spec = post(
        "/v1/flavors",
        json!({"name": "is-demospec", "vcpus": 1, "memory_mb": 256, "disk_gb": 10}),
    )
    .await;
    let network = post(
        "/v1/networks",
        json!({"name": "nw-demonet", "cidr": "10.0.2.0/24"}),
    )
    .await;
    let group = post(
        "/v1/security-groups",
        json!({"name": "default-web", "protocol": "tcp", "from_port": 80, "to_port": 80, "ip_range": "0.0.0.0/0"}),
    )
    .await;
    let (kai_id, kai) = s.user("kai", false).await;
    let (zoe_id, zoe) = s.user("zoe", false).await;
    for (user, customer) in [(&kai_id, &account), (&zoe_id, &other_account)] {
        let r = s
            .post(
                &format!("/v1/customers/{customer}/owners"),
                json!({"user_id": user}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let key = post(
        "/v1/ssh-keys",
        json!({"name": "demo", "public_key": "ssh-rsa AAAAB3 kai@vdc", "user_id": kai_id}),
    )
    .await;
    World {
        s,
        kai,
        kai_id,
        zoe,
        zoe_id,
        account,
        other_account,
        image,
        spec,
        network,
        group,
        key,
    }
}

impl World {
    fn acct(&self) -> String {
        format!("a-{}", hex(&self.account))
    }

    /// A request as dcmgr's clients sent it: the account and requester headers.
    fn req(
        &self,
        token: &str,
        account: &str,
        method: Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.s
            .http(method, &format!("{API}{path}"))
            .header("X-VDC-Account-UUID", account)
            .header("X-VDC-Requester-Token", token)
    }

    async fn kai(&self, method: Method, path: &str) -> Resp {
        Server::send(self.req(&self.kai, &self.acct(), method, path)).await
    }

    /// The create body, wrapped as ActiveResource sends it.
    fn create_body(&self, hostname: &str) -> Value {
        json!({"instance": {
            "image_id": format!("wmi-{}", hex(&self.image)),
            "instance_spec_id": format!("is-{}", hex(&self.spec)),
            "hostname": hostname,
            "ssh_key_id": format!("ssh-{}", hex(&self.key)),
            "security_groups": [format!("sg-{}", hex(&self.group))],
            "network_id": format!("nw-{}", hex(&self.network)),
            "user_data": "#!/bin/sh\necho hi",
            "ha_enabled": "true"
        }})
    }

    async fn create(&self, hostname: &str) -> Value {
        let r = Server::send(
            self.req(&self.kai, &self.acct(), Method::POST, "/instances.json")
                .json(&self.create_body(hostname)),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    }

    /// Polls show until `state`, as the HTTParty specs did.
    async fn wait_for(&self, id: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.kai(Method::GET, &format!("/instances/{id}")).await;
            if r.body["state"] == state {
                return r.body;
            }
            assert!(Instant::now() < deadline, "{id} never {state}: {}", r.body);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn timeline(&self, id: &str) -> Vec<String> {
        let r = self.s.get(&format!("/v1/instances/{id}/events")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| {
                format!(
                    "{}:{}",
                    e["type"].as_str().unwrap(),
                    e["origin"].as_str().unwrap()
                )
            })
            .collect()
    }
}

fn assert_error(r: &Resp, status: u16, class: &str, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    let mut keys: Vec<&String> = r.body.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["code", "error", "message"], "{}", r.body);
    assert_eq!(
        r.body["error"],
        format!("Dcmgr::Endpoints::{class}"),
        "{}",
        r.body
    );
    assert_eq!(r.body["code"], code, "{}", r.body);
}

on_each_backend!(#[tokio::test] async fn the_wiki_operations_and_the_codes_stop_and_start);
async fn the_wiki_operations_and_the_codes_stop_and_start() {
    let w = world(&[]).await;

    // create: the document, scheduling and offline.
    let doc = w.create("Web-01").await;
    let id = doc["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("i-") && id.len() == 10, "{id}");
    let mut keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "arch",
            "cpu_cores",
            "created_at",
            "ha_enabled",
            "host_node",
            "hostname",
            "id",
            "image_id",
            "instance_spec_id",
            "memory_size",
            "network",
            "security_groups",
            "ssh_key_pair",
            "state",
            "status",
            "vif",
            "volume"
        ]
    );
    assert_eq!(
        (&doc["state"], &doc["status"]),
        (&json!("scheduling"), &json!("offline"))
    );
    assert_eq!(doc["hostname"], "web-01", "downcased");
    assert_eq!(doc["ha_enabled"], 1);
    assert_eq!(doc["cpu_cores"], 1);
    assert_eq!(doc["memory_size"], 256);
    assert_eq!(doc["image_id"], format!("wmi-{}", hex(&w.image)));
    assert_eq!(doc["instance_spec_id"], format!("is-{}", hex(&w.spec)));
    assert_eq!(doc["ssh_key_pair"], format!("ssh-{}", hex(&w.key)));
    assert_eq!(
        doc["security_groups"],
        json!([format!("sg-{}", hex(&w.group))])
    );
    let created = doc["created_at"].as_str().unwrap();
    assert!(created.len() == 20 && created.ends_with('Z'), "{created}");
    let net = &doc["network"][0];
    assert_eq!(net["network_name"], format!("nw-{}", hex(&w.network)));
    let ip = net["ipaddr"][0].as_str().expect("ipaddr is a list");
    assert!(ip.starts_with("10.0.2."), "{ip}");
    assert_eq!(doc["vif"][0]["ipv4"]["address"], ip);
    assert!(
        doc["vif"][0]["vif_id"]
            .as_str()
            .unwrap()
            .starts_with("vif-")
    );
    assert_eq!(doc["volume"], json!([]));

    // show, polled until running (with and without the suffix).
    let running = w.wait_for(&id, "running").await;
    assert_eq!(running["status"], "online");
    let r = w.kai(Method::GET, &format!("/instances/{id}.json")).await;
    assert_eq!(r.body, running);

    // index: one object in an array, newest first.
    let second = w.create("db-01").await["id"].as_str().unwrap().to_string();
    let r = w.kai(Method::GET, "/instances").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let page = &r.body[0];
    assert_eq!(r.body.as_array().map(Vec::len), Some(1));
    assert_eq!(page["owner_total"], 2);
    assert_eq!((&page["start"], &page["limit"]), (&json!(0), &Value::Null));
    let order: Vec<&str> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(order, [second.as_str(), id.as_str()]);
    assert_eq!(page["result"], page["results"], "the wiki's name too");
    let r = w.kai(Method::GET, "/instances.json?start=1&limit=1").await;
    assert_eq!(r.body[0]["results"][0]["id"], id.as_str());
    assert_eq!(
        (&r.body[0]["start"], &r.body[0]["limit"]),
        (&json!(1), &json!(1))
    );
    let r = w.kai(Method::GET, "/instances?start=1").await;
    assert_eq!(
        r.body[0]["results"].as_array().map(Vec::len),
        Some(2),
        "start without limit is ignored"
    );

    // reboot: {} and still running.
    let r = w.kai(Method::PUT, &format!("/instances/{id}/reboot")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({}));
    assert_eq!(
        w.kai(Method::GET, &format!("/instances/{id}")).await.body["state"],
        "running"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.s.get(&format!("/v1/instances/{id}")).await.body["state"] != "running" {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // stop and start, the code's additions.
    let r = w
        .kai(Method::PUT, &format!("/instances/{id}/stop.json"))
        .await;
    assert_eq!(r.body, json!([id]));
    assert_eq!(
        w.kai(Method::GET, &format!("/instances/{id}")).await.body["state"],
        "stopping"
    );
    let stopped = w.wait_for(&id, "stopped").await;
    assert_eq!(stopped["status"], "offline");
    let r = w.kai(Method::PUT, &format!("/instances/{id}/start")).await;
    assert_eq!(r.body, json!([id]));
    assert_eq!(
        w.kai(Method::GET, &format!("/instances/{id}")).await.body["state"],
        "starting"
    );
    w.wait_for(&id, "running").await;

    // destroy: shuttingdown, then terminated, still shown and listed for the grace period.
    let r = w.kai(Method::DELETE, &format!("/instances/{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!([id]));
    assert_eq!(
        w.kai(Method::GET, &format!("/instances/{id}")).await.body["state"],
        "shuttingdown"
    );
    let gone = w.wait_for(&id, "terminated").await;
    assert_eq!((&gone["network"], &gone["vif"]), (&json!([]), &json!([])));
    let r = w.kai(Method::GET, "/instances").await;
    assert_eq!(r.body[0]["owner_total"], 2);
    // A stopped one terminates at once.
    w.wait_for(&second, "running").await;
    w.kai(Method::PUT, &format!("/instances/{second}/stop"))
        .await;
    w.wait_for(&second, "stopped").await;
    let r = w.kai(Method::DELETE, &format!("/instances/{second}")).await;
    assert_eq!(r.body, json!([second]));
    assert_eq!(
        w.kai(Method::GET, &format!("/instances/{second}"))
            .await
            .body["state"],
        "terminated"
    );
    // The host name is free again once its holder is terminated.
    w.create("web-01").await;

    assert_eq!(
        w.timeline(&id).await,
        [
            "Created:wakame",
            "Provisioned:driver",
            "RebootRequested:wakame",
            "Rebooted:driver",
            "StopRequested:wakame",
            "Stopped:driver",
            "StartRequested:wakame",
            "Started:driver",
            "DestroyRequested:wakame",
            "Destroyed:driver",
        ]
    );
    let r = w.s.get(&format!("/v1/instances/{id}/events")).await;
    assert_eq!(r.body["items"][0]["actor"], w.kai_id);
}

on_each_backend!(#[tokio::test] async fn form_parameters_defaults_and_the_grace_period);
async fn form_parameters_defaults_and_the_grace_period() {
    let w = world(&["--wakame-terminated-secs", "0"]).await;
    // Form parameters, no hostname (the id part is the default), no network.
    let body = format!(
        "image_id=wmi-{}&instance_spec_id=is-{}&security_groups[]=sg-{}&security_groups[]=sg-00000000",
        hex(&w.image),
        hex(&w.spec),
        hex(&w.group)
    );
    let r = Server::send(
        w.req(&w.kai, &w.acct(), Method::POST, "/instances")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["hostname"], id.trim_start_matches("i-"));
    assert_eq!(r.body["ha_enabled"], 0);
    assert_eq!(r.body["network"], json!([]));
    assert_eq!(
        r.body["security_groups"].as_array().map(Vec::len),
        Some(1),
        "unknown groups are skipped"
    );
    // Query parameters work as well.
    let r = w
        .kai(
            Method::POST,
            &format!(
                "/instances?image_id=wmi-{}&instance_spec_id=is-{}&hostname=q1",
                hex(&w.image),
                hex(&w.spec)
            ),
        )
        .await;
    assert_eq!(r.body["hostname"], "q1", "{}", r.body);
    let q1 = r.body["id"].as_str().unwrap().to_string();
    w.wait_for(&q1, "running").await;
    w.kai(Method::DELETE, &format!("/instances/{q1}")).await;
    w.wait_for(&q1, "terminated").await;
    // With no grace period it leaves the list at once, but stays shown.
    let r = w.kai(Method::GET, "/instances").await;
    assert_eq!(r.body[0]["owner_total"], 1);
    assert_eq!(
        w.kai(Method::GET, &format!("/instances/{q1}")).await.status,
        StatusCode::OK
    );
}

on_each_backend!(#[tokio::test] async fn every_documented_error_in_dcmgrs_shape_appends_nothing);
async fn every_documented_error_in_dcmgrs_shape_appends_nothing() {
    let w = world(&[]).await;
    let doc = w.create("taken").await;
    let id = doc["id"].as_str().unwrap().to_string();
    let before = w.s.position().await;

    // The account header is required; the token is checked.
    let r = Server::send(
        w.s.http(Method::GET, &format!("{API}/instances"))
            .header("X-VDC-Requester-Token", &w.kai),
    )
    .await;
    assert_error(&r, 400, "InvalidRequestCredentials", "103");
    for bad in ["", "wrong"] {
        let r = Server::send(w.req(bad, &w.acct(), Method::GET, "/instances")).await;
        assert_error(&r, 400, "InvalidRequestCredentials", "103");
    }
    let r = Server::send(w.req(&w.kai, "a-lucid5", Method::GET, "/instances")).await;
    assert_error(&r, 400, "InvalidRequestCredentials", "103");
    // An account the caller cannot see is no account.
    let other = format!("a-{}", hex(&w.other_account));
    let r = Server::send(w.req(&w.kai, &other, Method::GET, "/instances")).await;
    assert_error(&r, 400, "InvalidRequestCredentials", "103");

    // Unknown ids; another account's instance is not found.
    let r = w.kai(Method::GET, "/instances/i-zzzzzzzz").await;
    assert_error(&r, 404, "UnknownUUIDResource", "100");
    assert_eq!(r.body["message"], "i-zzzzzzzz");
    let r = Server::send(w.req(
        &w.zoe,
        &other,
        Method::PUT,
        &format!("/instances/{id}/reboot"),
    ))
    .await;
    assert_error(&r, 404, "UnknownUUIDResource", "100");

    // Create: the original's checks.
    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = w.create_body("fresh");
        f(&mut b["instance"]);
        b
    };
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            with(&|b| {
                b.as_object_mut().unwrap().remove("image_id");
            }),
            400,
            "InvalidImageID",
            "137",
        ),
        (
            with(&|b| b["image_id"] = json!("wmi-00000000000000000000000000000000")),
            400,
            "InvalidImageID",
            "137",
        ),
        (
            with(&|b| {
                b.as_object_mut().unwrap().remove("instance_spec_id");
            }),
            400,
            "InvalidInstanceSpec",
            "138",
        ),
        (
            with(&|b| b["ssh_key_id"] = json!("ssh-00000000000000000000000000000000")),
            404,
            "UnknownSshKeyPair",
            "121",
        ),
        (
            with(&|b| b["hostname"] = json!("TAKEN")),
            400,
            "DuplicateHostname",
            "126",
        ),
        (
            with(&|b| b["hostname"] = json!("-bad_name")),
            400,
            "InvalidHostname",
            "142",
        ),
        (
            with(&|b| b["host_node_id"] = json!("hn-demo1")),
            404,
            "UnknownHostNode",
            "114",
        ),
        (
            with(&|b| b["network_id"] = json!("nw-00000000000000000000000000000000")),
            404,
            "UnknownNetworkID",
            "129",
        ),
    ];
    for (body, status, class, code) in cases {
        let r = Server::send(
            w.req(&w.kai, &w.acct(), Method::POST, "/instances.json")
                .json(&body),
        )
        .await;
        assert_error(&r, status, class, code);
    }
    let r = Server::send(
        w.req(&w.kai, &w.acct(), Method::POST, "/instances.json")
            .header("Content-Type", "application/json")
            .body("{\"instance\": {"),
    )
    .await;
    assert_error(&r, 400, "UndefinedRequiredParameter", "118");

    // Invalid states: 400, code 125, the state as the message.
    let r = w.kai(Method::DELETE, &format!("/instances/{id}")).await;
    assert_error(&r, 400, "InvalidInstanceState", "125");
    assert_eq!(r.body["message"], "scheduling");
    let r = w.kai(Method::PUT, &format!("/instances/{id}/start")).await;
    assert_error(&r, 400, "InvalidInstanceState", "125");
    w.wait_for(&id, "running").await;
    let mid = w.s.position().await;
    let r = w.kai(Method::PUT, &format!("/instances/{id}/start")).await;
    assert_error(&r, 400, "InvalidInstanceState", "125");
    assert_eq!(r.body["message"], "running");

    // Not permitted: another account's owner who can see it may not destroy it.
    let grant =
        w.s.post(
            &format!("/v1/customers/{}/owners", w.account),
            json!({"user_id": w.zoe_id}),
        )
        .await;
    assert_eq!(grant.status, StatusCode::OK, "{}", grant.body);
    let mid = mid + 1; // the grant
    let r = Server::send(w.req(&w.zoe, &other, Method::DELETE, &format!("/instances/{id}"))).await;
    assert_error(&r, 403, "OperationNotPermitted", "105");

    // No route, and no 405: Sinatra's 404 page.
    for (method, path) in [
        (Method::GET, "/nodes"),
        (Method::POST, "/instances/i-zzzzzzzz"),
    ] {
        let r = w.kai(method, path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.body, json!("<h1>Not Found</h1>"));
    }

    assert_eq!(w.s.position().await, mid, "no refusal appended anything");
    assert!(before < mid, "only the provisioning happened in between");
}

on_each_backend!(#[tokio::test] async fn the_same_instances_natively_through_launch_provision_and_here);
async fn the_same_instances_natively_through_launch_provision_and_here() {
    let w = world(&[]).await;
    let id = w.create("shared").await["id"].as_str().unwrap().to_string();
    w.wait_for(&id, "running").await;
    let native = w.s.get(&format!("/v1/instances/{id}")).await;
    assert_eq!(
        (&native.body["hostname"], &native.body["state"]),
        (&json!("shared"), &json!("running"))
    );
    // Stopped through Launch & Provision, by the same `i-` id.
    let r = Server::send(
        w.s.http(Method::PUT, &format!("/launch-provision/v1/{id}/stop"))
            .bearer_auth(&w.kai),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    w.wait_for(&id, "stopped").await;
    // Made natively in the account's project, operated here.
    let project = w.s.get("/v1/projects").await;
    let project = project.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["customer_id"] == w.account.as_str())
        .expect("the account's project")["id"]
        .clone();
    let r = w
        .s
        .post(
            "/v1/instances",
            json!({"name": "native", "hostname": "native-1", "project_id": project, "flavor_id": w.spec, "image_id": w.image}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let short = r.body["short_id"].as_str().unwrap().to_string();
    w.wait_for(&short, "running").await;
    let r = w
        .kai(Method::PUT, &format!("/instances/{short}/reboot"))
        .await;
    assert_eq!(r.body, json!({}));
    let r = w.kai(Method::GET, "/instances").await;
    assert_eq!(r.body[0]["owner_total"], 2);
    let events = w.timeline(&short).await;
    assert_eq!(events[2], "RebootRequested:wakame");
}
