//! The NodeConductor dialect as its clients met it (seed 000): every operation of the seed
//! document, sent as the document shows it, answered as DRF 2.3 answered it; states a
//! polling client sees; the same instances through the native API; every documented
//! refusal, with nothing appended.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Resp, Server};

const API: &str = "/nodeconductor/api";

struct World {
    s: Server,
    /// Project administrator, its customer's owner, a manager, someone with no role.
    ann: String,
    olga: String,
    mike: String,
    stranger: String,
    project: String,
    flavor: String,
    flavor_big: String,
    image: String,
    key: String,
    mike_key: String,
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
    let customer = post("/v1/customers", json!({"name": "Customer A"})).await;
    let project = post(
        "/v1/projects",
        json!({"name": "Project One", "customer_id": customer}),
    )
    .await;
    let flavor = post(
        "/v1/flavors",
        json!({"name": "Weak & Small", "vcpus": 2, "memory_mb": 2048, "disk_gb": 10}),
    )
    .await;
    let flavor_big = post(
        "/v1/flavors",
        json!({"name": "Powerful & Large", "vcpus": 16, "memory_mb": 32768, "disk_gb": 100}),
    )
    .await;
    let image = post("/v1/images", json!({"name": "CentOS 7"})).await;
    for name in ["security group name 1", "security group name 2"] {
        post(
            "/v1/security-groups",
            json!({"name": name, "protocol": "tcp", "from_port": 1, "to_port": 65535, "ip_range": "0.0.0.0/0"}),
        )
        .await;
    }
    let (ann_id, ann) = s.user("ann", false).await;
    let (olga_id, olga) = s.user("olga", false).await;
    let (mike_id, mike) = s.user("mike", false).await;
    let (_, stranger) = s.user("stranger", false).await;
    for (user, role) in [(&ann_id, "administrator"), (&mike_id, "manager")] {
        let r = s
            .post(
                &format!("/v1/projects/{project}/members"),
                json!({"user_id": user, "role": role}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let r = s
        .post(
            &format!("/v1/customers/{customer}/owners"),
            json!({"user_id": olga_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let key = post(
        "/v1/ssh-keys",
        json!({"name": "ann's key", "public_key": "ssh-ed25519 AAAAC3Nz ann@laptop", "user_id": ann_id}),
    )
    .await;
    let mike_key = post(
        "/v1/ssh-keys",
        json!({"name": "mike's key", "public_key": "ssh-ed25519 AAAAC3Nz mike@laptop", "user_id": mike_id}),
    )
    .await;
    World {
        s,
        ann,
        olga,
        mike,
        stranger,
        project,
        flavor,
        flavor_big,
        image,
        key,
        mike_key,
    }
}

impl World {
    fn url(&self, collection: &str, id: &str) -> String {
        format!("http://example.com/api/{collection}/{}/", hex(id))
    }

    async fn nc(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut req = self
            .s
            .http(method, &format!("{API}{path}"))
            .header("Authorization", format!("Token {token}"))
            .header("Accept", "application/json");
        if let Some(b) = body {
            req = req.json(&b);
        }
        Server::send(req).await
    }

    /// The seed's create request, made valid (its sample has an unquoted value).
    fn create_body(&self, hostname: &str) -> Value {
        json!({
            "hostname": hostname,
            "description": "sample description",
            "template": self.url("iaas-templates", &self.image),
            "flavor": self.url("flavors", &self.flavor),
            "project": self.url("projects", &self.project),
            "ssh_public_key": self.url("keys", &self.key),
            "security_groups": [{"name": "security group name 1"}, {"name": "security group name 2"}]
        })
    }

    /// Creates through the dialect as ann; the instance's uuid.
    async fn create(&self, hostname: &str) -> String {
        let r = self
            .nc(
                &self.ann,
                Method::POST,
                "/instances/",
                Some(self.create_body(hostname)),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let url = r.body["url"].as_str().expect("url").to_string();
        url.trim_end_matches('/')
            .rsplit('/')
            .next()
            .expect("uuid")
            .to_string()
    }

    /// Polls `GET instances/{uuid}/` as a NodeConductor client would, until `state`.
    async fn wait_for(&self, uuid: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self
                .nc(&self.ann, Method::GET, &format!("/instances/{uuid}/"), None)
                .await;
            if r.body["state"] == state {
                return r.body;
            }
            assert!(
                Instant::now() < deadline,
                "{uuid} never {state}: {}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn head(&self) -> u64 {
        self.s.position().await
    }
}

on_each_backend!(#[tokio::test] async fn the_seed_operations_as_the_document_shows_them);
async fn the_seed_operations_as_the_document_shows_them() {
    let w = world().await;

    // Create, exactly as the document's example (headers, hyperlinks from another host).
    let body = w.create_body("test VM");
    let r = Server::send(
        w.s.http(Method::POST, &format!("{API}/instances/"))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .header("Authorization", format!("Token {}", w.ann))
            .header("Host", "example.com")
            .body(body.to_string()),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let created = r.body.clone();
    let location = r.header("location").expect("Location");
    assert_eq!(created["url"], location);
    assert!(location.starts_with("http://example.com/nodeconductor/api/instances/"));
    let mut keys: Vec<&str> = created
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "description",
            "flavor",
            "hostname",
            "project",
            "security_groups",
            "ssh_public_key",
            "template",
            "url"
        ],
        "the create serializer's fields only"
    );
    assert_eq!(
        created["security_groups"][1]["name"],
        "security group name 2"
    );
    assert_eq!(created["security_groups"][1]["to_port"], 65535);
    let uuid = location
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .expect("uuid")
        .to_string();
    assert_eq!(uuid.len(), 32, "dashless uuids");

    // A polling client sees the scheduled state, then the result.
    let first = w
        .nc(&w.ann, Method::GET, &format!("/instances/{uuid}/"), None)
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["state"], "Provisioning Scheduled");
    assert_eq!(first.body["status"], "Provisioning Scheduled");
    let online = w.wait_for(&uuid, "Online").await;
    for (field, want) in [
        ("hostname", json!("test VM")),
        ("description", json!("sample description")),
        ("template_name", json!("CentOS 7")),
        ("flavor_name", json!("Weak & Small")),
        ("project_name", json!("Project One")),
        ("customer_name", json!("Customer A")),
        ("ssh_public_key_name", json!("ann's key")),
        ("start_time", Value::Null),
    ] {
        assert_eq!(online[field], want, "{field}: {online}");
    }
    assert_eq!(online["uuid"], uuid);
    assert_eq!(
        online["template"],
        format!("{}{API}/iaas-templates/{}/", w.s.base, hex(&w.image)),
        "hyperlinks are built from the host the client used"
    );
    assert_eq!(online["security_groups"][0]["protocol"], "tcp");
    assert!(online["ips"].is_array());

    // Stop, then start; both scheduled, then carried out.
    for (op, scheduled, result) in [
        ("stop", "Stopping Scheduled", "Offline"),
        ("start", "Starting Scheduled", "Online"),
        ("stop", "Stopping Scheduled", "Offline"),
    ] {
        let r = w
            .nc(
                &w.ann,
                Method::POST,
                &format!("/instances/{uuid}/{op}/"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{op}: {}", r.body);
        assert_eq!(r.body, json!({"status": format!("{op} was scheduled")}));
        let now = w
            .nc(&w.ann, Method::GET, &format!("/instances/{uuid}/"), None)
            .await;
        assert_eq!(now.body["state"], scheduled, "{op}");
        w.wait_for(&uuid, result).await;
    }

    // Resize, with the flavor as a bare uuid (the document's form, made valid JSON).
    let r = w
        .nc(
            &w.ann,
            Method::POST,
            &format!("/instances/{uuid}/resize/"),
            Some(json!({"flavor": hex(&w.flavor_big)})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"status": "resize was scheduled"}));
    let now = w
        .nc(&w.ann, Method::GET, &format!("/instances/{uuid}/"), None)
        .await;
    assert_eq!(now.body["state"], "Resizing Scheduled");
    let resized = w.wait_for(&uuid, "Offline").await;
    assert_eq!(resized["flavor_name"], "Powerful & Large");

    // The list: a JSON array with the paging headers, filtered as the original filtered.
    let second = w.create("vm-43").await;
    w.wait_for(&second, "Online").await;
    let r = w.nc(&w.ann, Method::GET, "/instances/", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("x-result-count").as_deref(), Some("2"));
    let hostnames: Vec<&str> = r
        .body
        .as_array()
        .expect("array")
        .iter()
        .map(|i| i["hostname"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(hostnames, ["test VM", "vm-43"], "ordered by hostname");
    let link = r.header("link").expect("Link");
    assert!(
        link.contains("rel=\"last\"") && link.contains("rel=\"first\""),
        "{link}"
    );
    assert!(!link.contains("rel=\"next\""), "one page: {link}");
    for (query, want) in [
        ("hostname=VM-4", vec!["vm-43"]),
        ("hostname=test", vec!["test VM"]),
        ("customer_name=customer%20a", vec!["test VM", "vm-43"]),
        ("project=one", vec!["test VM", "vm-43"]),
        ("project=nope", vec![]),
        ("state=%2B", vec!["vm-43"]),
        ("state=Online", vec!["vm-43"]),
        ("state=-", vec!["test VM"]),
        ("state=offline", vec!["test VM"]),
        ("security_groups=name%202", vec!["test VM", "vm-43"]),
        ("project_group=any", vec![]),
        ("o=-hostname", vec!["vm-43", "test VM"]),
        ("o=state", vec!["vm-43", "test VM"]),
        ("o=bogus", vec![]),
    ] {
        let r = w
            .nc(&w.ann, Method::GET, &format!("/instances/?{query}"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
        let got: Vec<&str> = r
            .body
            .as_array()
            .expect("array")
            .iter()
            .map(|i| i["hostname"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(got, want, "{query}");
        assert_eq!(
            r.header("x-result-count"),
            Some(want.len().to_string()),
            "{query}"
        );
    }
    let r = w
        .nc(&w.ann, Method::GET, "/instances/?page=2&page_size=1", None)
        .await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(1));
    let link = r.header("link").expect("Link");
    assert!(
        link.contains("page=1&page_size=1>; rel=\"prev\"")
            || link.contains("page_size=1&page=1>; rel=\"prev\""),
        "{link}"
    );
    assert_eq!(
        w.nc(&w.ann, Method::GET, "/instances/?page=3&page_size=1", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Delete: only stopped instances; scheduled, then gone.
    let r = w
        .nc(&w.ann, Method::DELETE, &format!("/instances/{uuid}/"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"status": "destroy was scheduled"}));
    let now = w
        .nc(&w.ann, Method::GET, &format!("/instances/{uuid}/"), None)
        .await;
    assert_eq!(now.body["state"], "Deletion Scheduled");
    let deadline = Instant::now() + Duration::from_secs(20);
    while w
        .nc(&w.ann, Method::GET, &format!("/instances/{uuid}/"), None)
        .await
        .status
        != StatusCode::NOT_FOUND
    {
        assert!(Instant::now() < deadline, "never deleted");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let r = w.nc(&w.ann, Method::GET, "/instances/", None).await;
    assert_eq!(r.header("x-result-count").as_deref(), Some("1"));

    // The native timeline records every request with its origin and the caller.
    let native_id = uuid::Uuid::try_parse(&uuid).expect("uuid").to_string();
    let timeline = w.s.get(&format!("/v1/instances/{native_id}/events")).await;
    let types: Vec<(&str, &str)> = timeline.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or(""),
                e["origin"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            ("Created", "nodeconductor"),
            ("Provisioned", "driver"),
            ("StopRequested", "nodeconductor"),
            ("Stopped", "driver"),
            ("StartRequested", "nodeconductor"),
            ("Started", "driver"),
            ("StopRequested", "nodeconductor"),
            ("Stopped", "driver"),
            ("ResizeRequested", "nodeconductor"),
            ("Resized", "driver"),
            ("DestroyRequested", "nodeconductor"),
            ("Destroyed", "driver"),
        ]
    );
    let me = Server::send(w.s.http(Method::GET, "/v1/me").bearer_auth(&w.ann)).await;
    assert_eq!(timeline.body["items"][0]["actor"], me.body["id"]);
    // Natively it is destroyed and recoverable: NodeConductor's delete hides it only.
    assert_eq!(
        w.s.get(&format!("/v1/instances/{native_id}")).await.body["state"],
        "destroyed"
    );
}

on_each_backend!(#[tokio::test] async fn instances_cross_between_nodeconductor_and_native);
async fn instances_cross_between_nodeconductor_and_native() {
    let w = world().await;
    // Made here, operated natively.
    let uuid = w.create("crossing").await;
    w.wait_for(&uuid, "Online").await;
    let id = uuid::Uuid::try_parse(&uuid).expect("uuid").to_string();
    let r = Server::send(
        w.s.http(Method::POST, &format!("/v1/instances/{id}/stop"))
            .bearer_auth(&w.ann),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    w.wait_for(&uuid, "Offline").await;
    // Made natively, operated here (dashed uuids accepted in paths).
    let native = Server::send(
        w.s.http(Method::POST, "/v1/instances")
            .bearer_auth(&w.ann)
            .json(&json!({"name": "native-1", "project_id": w.project, "flavor_id": w.flavor, "image_id": w.image})),
    )
    .await;
    assert_eq!(native.status, StatusCode::CREATED, "{}", native.body);
    let nid = native.id();
    w.s.wait_for_state(&nid, "running").await;
    let r = w
        .nc(
            &w.ann,
            Method::POST,
            &format!("/instances/{nid}/stop/"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    w.s.wait_for_state(&nid, "stopped").await;
    let shown = w
        .nc(
            &w.ann,
            Method::GET,
            &format!("/instances/{}/", hex(&nid)),
            None,
        )
        .await;
    assert_eq!(shown.body["state"], "Offline");
    assert_eq!(shown.body["hostname"], "native-1");
    assert_eq!(shown.body["ssh_public_key"], Value::Null);
}

on_each_backend!(#[tokio::test] async fn every_documented_refusal_appends_nothing);
async fn every_documented_refusal_appends_nothing() {
    let w = world().await;
    let uuid = w.create("target").await;
    w.wait_for(&uuid, "Online").await;
    let customer =
        w.s.get(&format!("/v1/projects/{}", w.project)).await.body["customer_id"].clone();
    let elsewhere =
        w.s.post(
            "/v1/projects",
            json!({"name": "Other", "customer_id": customer}),
        )
        .await
        .id();
    let restricted = w
        .s
        .post(
            "/v1/flavors",
            json!({"name": "other only", "vcpus": 1, "memory_mb": 512, "disk_gb": 1, "projects": [elsewhere]}),
        )
        .await
        .id();
    let before = w.head().await;
    let path = |op: &str| format!("/instances/{uuid}/{op}");
    let check = |r: &Resp, status: u16, body: Value| {
        assert_eq!(r.status.as_u16(), status, "{}", r.body);
        assert_eq!(r.body, body);
    };

    // Invalid state: 409 naming the state as the client sees it.
    let r = w.nc(&w.ann, Method::POST, &path("start/"), None).await;
    check(
        &r,
        409,
        json!({"status": "Performing start operation from instance state 'Online' is not allowed"}),
    );
    let r = w
        .nc(&w.ann, Method::DELETE, &format!("/instances/{uuid}/"), None)
        .await;
    check(
        &r,
        409,
        json!({"status": "Performing destroy operation from instance state 'Online' is not allowed"}),
    );
    let r = w
        .nc(
            &w.ann,
            Method::POST,
            &path("resize/"),
            Some(json!({"flavor": hex(&w.flavor_big)})),
        )
        .await;
    check(
        &r,
        409,
        json!({"status": "Performing resize operation from instance state 'Online' is not allowed"}),
    );

    // Unknown id.
    let r = w
        .nc(
            &w.ann,
            Method::GET,
            "/instances/00000000000000000000000000000000/",
            None,
        )
        .await;
    check(&r, 404, json!({"detail": "Not found"}));
    let r = w
        .nc(
            &w.ann,
            Method::POST,
            "/instances/00000000000000000000000000000000/stop/",
            None,
        )
        .await;
    check(&r, 404, json!({"detail": "Not found"}));

    // Missing arguments.
    let r = w
        .nc(&w.ann, Method::POST, &path("resize/"), Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body, Value::Null, "an empty body");
    let r = w
        .nc(
            &w.ann,
            Method::POST,
            &path("resize/"),
            Some(json!({"flavor": "nope"})),
        )
        .await;
    check(
        &r,
        400,
        json!({"status": "New flavor is not within the same cloud"}),
    );
    let r = w
        .nc(&w.ann, Method::POST, "/instances/", Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    for field in [
        "hostname",
        "template",
        "flavor",
        "project",
        "ssh_public_key",
    ] {
        assert_eq!(
            r.body[field],
            json!(["This field is required."]),
            "{field}: {}",
            r.body
        );
    }
    let mut long = w.create_body(&"x".repeat(81));
    long["security_groups"] = json!([{"name": "security group name 1"}, {"name": "nope"}, {}]);
    let r = w.nc(&w.ann, Method::POST, "/instances/", Some(long)).await;
    assert_eq!(
        r.body["hostname"],
        json!(["Ensure this value has at most 80 characters (it has 81)."])
    );
    assert_eq!(
        r.body["security_groups"],
        json!([{}, {"name": ["There is no group with name nope"]}, {"name": ["This field is required."]}])
    );
    let r = Server::send(
        w.s.http(Method::POST, &format!("{API}/instances/"))
            .header("Authorization", format!("Token {}", w.ann))
            .header("Content-Type", "application/json")
            .body(r#"{"hostname": "x", "security_groups": [{"name": security group name 2}]}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("JSON parse error - "),
        "{}",
        r.body
    );

    // Unknown references.
    let mut bad = w.create_body("x");
    bad["template"] = json!(w.url("iaas-templates", "00000000000000000000000000000000"));
    bad["flavor"] = json!("http://example.com/api/nowhere/1/");
    bad["project"] = json!(7);
    let r = w.nc(&w.ann, Method::POST, "/instances/", Some(bad)).await;
    assert_eq!(
        r.body["template"],
        json!(["Invalid hyperlink - object does not exist."]),
        "{}",
        r.body
    );
    assert_eq!(
        r.body["flavor"],
        json!(["Invalid hyperlink - No URL match"])
    );
    assert_eq!(
        r.body["project"],
        json!(["Incorrect type.  Expected url string, received int."])
    );

    // Someone else's key is not found; a flavor the project may not use is refused.
    let mut theirs = w.create_body("x");
    theirs["ssh_public_key"] = json!(w.url("keys", &w.mike_key));
    let r = w
        .nc(&w.ann, Method::POST, "/instances/", Some(theirs))
        .await;
    check(&r, 404, json!({"detail": "Not found"}));
    let mut restricted_body = w.create_body("x");
    restricted_body["flavor"] = json!(w.url("flavors", &restricted));
    let r = w
        .nc(&w.ann, Method::POST, "/instances/", Some(restricted_body))
        .await;
    check(
        &r,
        400,
        json!({"__all__": ["Flavor is not within project's clouds."]}),
    );
    let staff = crate::harness::TOKEN;

    // Not authenticated.
    let r = Server::send(w.s.http(Method::GET, &format!("{API}/instances/"))).await;
    check(
        &r,
        401,
        json!({"detail": "Authentication credentials were not provided."}),
    );
    assert_eq!(r.header("www-authenticate").as_deref(), Some("Token"));
    let r = w.nc("deadbeef", Method::GET, "/instances/", None).await;
    check(&r, 401, json!({"detail": "Invalid token"}));
    let r = w.nc(staff, Method::GET, "/instances/", None).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the bootstrap token is staff here too"
    );

    // Not permitted: a manager sees but may not act (403); no role: it does not exist.
    let r = w.nc(&w.mike, Method::POST, &path("stop/"), None).await;
    check(
        &r,
        403,
        json!({"detail": "You do not have permission to perform this action."}),
    );
    let mut mikes = w.create_body("x");
    mikes["ssh_public_key"] = json!(w.url("keys", &w.mike_key));
    let r = w
        .nc(&w.mike, Method::POST, "/instances/", Some(mikes))
        .await;
    check(
        &r,
        403,
        json!({"detail": "You do not have permission to perform this action."}),
    );
    let r = w.nc(&w.olga, Method::POST, &path("stop/"), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let seen = w
        .nc(&w.olga, Method::GET, &format!("/instances/{uuid}/"), None)
        .await;
    assert_eq!(
        seen.status,
        StatusCode::OK,
        "customer owners see their customers' instances"
    );
    let r = w.nc(&w.stranger, Method::POST, &path("stop/"), None).await;
    check(&r, 404, json!({"detail": "Not found"}));
    let r = w
        .nc(
            &w.stranger,
            Method::GET,
            &format!("/instances/{uuid}/"),
            None,
        )
        .await;
    check(&r, 404, json!({"detail": "Not found"}));
    let r = w.nc(&w.stranger, Method::GET, "/instances/", None).await;
    assert_eq!(r.body, json!([]));
    assert_eq!(r.header("x-result-count").as_deref(), Some("0"));

    // The dialect's own 404 and 405, and Django's trailing-slash redirect.
    let r = w.nc(&w.ann, Method::GET, "/nowhere/", None).await;
    check(&r, 404, json!({"detail": "Not found"}));
    let r = w.nc(&w.ann, Method::GET, &path("start/"), None).await;
    check(&r, 405, json!({"detail": "Method 'GET' not allowed."}));
    assert_eq!(r.header("allow").as_deref(), Some("POST, OPTIONS"));
    let r = Server::send(
        w.s.http(Method::GET, &format!("{API}/instances"))
            .header("Authorization", format!("Token {}", w.ann)),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "redirects are followed to the slashed URL"
    );

    assert_eq!(w.head().await, before, "no refusal appended anything");
}

on_each_backend!(#[tokio::test] async fn the_catalog_a_client_links_to);
async fn the_catalog_a_client_links_to() {
    let w = world().await;
    for (collection, name) in [
        ("iaas-templates", "CentOS 7"),
        ("flavors", "Weak & Small"),
        ("projects", "Project One"),
        ("keys", "ann's key"),
    ] {
        let r = w
            .nc(&w.ann, Method::GET, &format!("/{collection}/"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{collection}: {}", r.body);
        let items = r.body.as_array().expect("array");
        let found = items
            .iter()
            .find(|i| i["name"] == name)
            .unwrap_or_else(|| panic!("{collection}: {}", r.body));
        let url = found["url"].as_str().expect("url");
        let path = url.split(API).nth(1).expect("our URL");
        let one = w.nc(&w.ann, Method::GET, path, None).await;
        assert_eq!(one.status, StatusCode::OK, "{url}");
        assert_eq!(one.body["uuid"], found["uuid"]);
    }
    let flavors = w.nc(&w.ann, Method::GET, "/flavors/", None).await;
    let small = flavors
        .body
        .as_array()
        .expect("array")
        .iter()
        .find(|f| f["name"] == "Weak & Small")
        .cloned()
        .expect("flavor");
    assert_eq!(
        (
            small["cores"].clone(),
            small["ram"].clone(),
            small["disk"].clone()
        ),
        (json!(2), json!(2.0), json!(10.0))
    );
    let keys = w.nc(&w.mike, Method::GET, "/keys/", None).await;
    let names: Vec<&str> = keys
        .body
        .as_array()
        .expect("array")
        .iter()
        .map(|k| k["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["mike's key"], "only one's own keys");
    let projects = w.nc(&w.stranger, Method::GET, "/projects/", None).await;
    assert_eq!(projects.body, json!([]));
    let groups = w.nc(&w.ann, Method::GET, "/security-groups/", None).await;
    assert_eq!(groups.body.as_array().map(Vec::len), Some(2));
}
