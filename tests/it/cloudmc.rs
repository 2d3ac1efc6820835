//! The CloudMC dialect as its clients met it (seed 002): every operation of the seed
//! document with its bodies, polled through tasks as the Go client polls them (`data.status`
//! until it is not PENDING), CloudStack's states, the password only in the asker's task
//! result, tasks surviving a restart, the same instances natively and through Mogan, and
//! every documented refusal in `{"errors": [...]}` with nothing appended.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Resp, Server};

const BASE: &str = "/cloudmc/api/v2";

pub(crate) struct World {
    pub(crate) s: Server,
    /// Project administrator of `test_area`.
    pub(crate) ana: String,
    pub(crate) ana_id: String,
    /// A manager of `test_area` (reads, does not operate).
    pub(crate) max: String,
    /// In another customer's `other_area`.
    pub(crate) eve: String,
    pub(crate) project: String,
    pub(crate) fixed: String,
    pub(crate) custom: String,
    pub(crate) image: String,
    pub(crate) net: String,
    pub(crate) net2: String,
    pub(crate) iso: String,
    pub(crate) boot_iso: String,
}

pub(crate) async fn world(s: Server) -> World {
    let post = |path: &'static str, body: Value| {
        let s = &s;
        async move {
            let r = s.post(path, body).await;
            assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.body);
            r.id()
        }
    };
    let customer = post("/v1/customers", json!({"name": "cox"})).await;
    let project = post(
        "/v1/projects",
        json!({"name": "test_area", "customer_id": customer}),
    )
    .await;
    let other_customer = post("/v1/customers", json!({"name": "elsewhere"})).await;
    let other = post(
        "/v1/projects",
        json!({"name": "other_area", "customer_id": other_customer}),
    )
    .await;
    let fixed = post(
        "/v1/flavors",
        json!({"name": "1vCPU.512MB", "vcpus": 1, "memory_mb": 512, "disk_gb": 20}),
    )
    .await;
    let custom = post(
        "/v1/flavors",
        json!({"name": "custom", "vcpus": 8, "memory_mb": 16384, "disk_gb": 50, "custom": true}),
    )
    .await;
    let image = post("/v1/images", json!({"name": "CentOS 6.8 PV"})).await;
    let net = post(
        "/v1/networks",
        json!({"name": "Web-test_area", "cidr": "10.164.212.0/24"}),
    )
    .await;
    let net2 = post(
        "/v1/networks",
        json!({"name": "Db-test_area", "cidr": "10.164.213.0/24"}),
    )
    .await;
    let iso = post("/v1/isos", json!({"name": "virtio-tools"})).await;
    let boot_iso = post("/v1/isos", json!({"name": "installer", "bootable": true})).await;
    let (ana_id, ana) = s.user("ana", false).await;
    let (max_id, max) = s.user("max", false).await;
    let (eve_id, eve) = s.user("eve", false).await;
    for (user, p, role) in [
        (&ana_id, &project, "administrator"),
        (&max_id, &project, "manager"),
        (&eve_id, &other, "administrator"),
    ] {
        let r = s
            .post(
                &format!("/v1/projects/{p}/members"),
                json!({"user_id": user, "role": role}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    for name in ["mysshkey", "my_ssh_key"] {
        let r = s
            .post(
                "/v1/ssh-keys",
                json!({"name": name, "public_key": format!("ssh-ed25519 AAAAC3Nz {name}"), "user_id": ana_id}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    World {
        s,
        ana,
        ana_id,
        max,
        eve,
        project,
        fixed,
        custom,
        image,
        net,
        net2,
        iso,
        boot_iso,
    }
}

impl World {
    pub(crate) fn instances(&self) -> String {
        format!("{BASE}/services/compute-on/test_area/instances")
    }

    /// A request as the docs' curl sends it: `MC-Api-Key` and a JSON content type.
    async fn call(&self, key: &str, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut req = self
            .s
            .http(method, path)
            .header("MC-Api-Key", key)
            .header("Content-Type", "application/json");
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        Server::send(req).await
    }

    pub(crate) async fn ana(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.call(&self.ana, method, path, body).await
    }

    /// `POST .../instances/{id}?operation=<op>`, then the task polled to its end.
    pub(crate) async fn op(&self, id: &str, op: &str, body: Option<Value>) -> Value {
        let r = self
            .ana(
                Method::POST,
                &format!("{}/{id}?operation={op}", self.instances()),
                body,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{op}: {}", r.body);
        self.settle(&r, &self.ana).await
    }

    /// Polls `GET /tasks/{id}` as the Go client does, until it is not PENDING; a task that
    /// was done at once is taken from the answer's `data`.
    pub(crate) async fn settle(&self, answer: &Resp, key: &str) -> Value {
        let task = answer.body["taskId"].as_str().expect("taskId").to_string();
        let status = answer.body["taskStatus"].as_str().expect("taskStatus");
        assert!(["PENDING", "SUCCESS"].contains(&status), "{}", answer.body);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self
                .call(key, Method::GET, &format!("{BASE}/tasks/{task}"), None)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            let d = &r.body["data"];
            assert_eq!(d["id"], task.as_str());
            assert!(d["created"].is_string());
            assert_eq!(d["status"], r.body["taskStatus"]);
            if d["status"] != "PENDING" {
                assert_eq!(d["status"], "SUCCESS", "{}", r.body);
                assert_eq!(d["result"], r.body["result"]);
                if status == "SUCCESS" {
                    assert_eq!(answer.body["data"]["id"], d["result"]["id"]);
                }
                return d["result"].clone();
            }
            assert!(Instant::now() < deadline, "task {task} never ended");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn retrieve(&self, id: &str) -> Value {
        let r = self
            .ana(Method::GET, &format!("{}/{id}", self.instances()), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["data"].clone()
    }

    /// The seed's create body, with this server's ids.
    pub(crate) fn create_body(&self, name: &str) -> Value {
        json!({
            "name": name,
            "additionalDiskIops": 1000,
            "additionalDiskSizeInGb": 20,
            "affinityGroupId": "1c0bfd2b-d609-4892-a43e-273654532d26",
            "computeOfferingId": self.fixed,
            "diskOfferingId": "f16f7f1b-462d-47b9-97bb-25a19e47a648",
            "networkId": self.net,
            "portsToForward": ["80", "9999"],
            "rootVolumeSizeInGb": 60,
            "sshKeyName": "mysshkey",
            "templateId": self.image,
            "userData": "#!/bin/bash\necho 'hello world'",
            "volumeIdToAttach": "2478012b-3cf3-4eef-a8d6-85eb8599df6d"
        })
    }

    pub(crate) async fn create(&self, body: Value) -> String {
        let r = self.ana(Method::POST, &self.instances(), Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["taskStatus"], "PENDING");
        let result = self.settle(&r, &self.ana).await;
        result["id"].as_str().expect("the instance").to_string()
    }

    async fn types(&self, id: &str) -> Vec<String> {
        let r = self.s.get(&format!("/v1/instances/{id}/events")).await;
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

fn assert_error(r: &Resp, status: u16, code: u64) -> Value {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    let e = &r.body["errors"][0];
    assert_eq!(e["code"], code, "{}", r.body);
    assert_eq!(e["errorCode"], code.to_string(), "{}", r.body);
    assert!(e["message"].is_string(), "{}", r.body);
    e["context"].clone()
}

on_each_backend!(#[tokio::test] async fn every_operation_of_the_seed_through_its_tasks);
async fn every_operation_of_the_seed_through_its_tasks() {
    let w = world(Server::start(&["--driver-delay-ms", "200"])).await;

    // Create with the seed's body; the task's result is the instance.
    let id = w.create(w.create_body("jarvis")).await;
    let list = w.ana(Method::GET, &w.instances(), None).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.body["metadata"], json!({"recordCount": 1}));
    let item = &list.body["data"][0];
    for key in [
        "id",
        "name",
        "affinityGroupIds",
        "computeOfferingId",
        "computeOfferingName",
        "cpuCount",
        "hostname",
        "imageId",
        "imageName",
        "ipAddress",
        "isPasswordEnabled",
        "macAddress",
        "memoryInMB",
        "networkId",
        "networkName",
        "state",
        "username",
        "vpcId",
        "vpcName",
        "zoneId",
        "zoneName",
    ] {
        assert!(item.get(key).is_some(), "list item lacks {key}: {item}");
    }
    assert_eq!(item["state"], "Running");
    assert_eq!(item["name"], "jarvis");
    assert_eq!(item["hostname"], "jarvis");
    assert_eq!(item["computeOfferingName"], "1vCPU.512MB");
    assert_eq!(
        (&item["cpuCount"], &item["memoryInMB"]),
        (&json!(1), &json!(512))
    );
    assert_eq!(
        (&item["imageName"], &item["templateId"]),
        (&json!("CentOS 6.8 PV"), &json!(w.image))
    );
    assert_eq!(item["networkName"], "Web-test_area");
    assert_eq!(
        item["affinityGroupIds"],
        json!(["1c0bfd2b-d609-4892-a43e-273654532d26"])
    );
    assert!(
        item["ipAddress"]
            .as_str()
            .unwrap()
            .starts_with("10.164.212.")
    );
    assert!(item.get("userData").is_none(), "retrieve-only");
    let one = w.retrieve(&id).await;
    assert_eq!(one["userData"], "#!/bin/bash\necho 'hello world'");
    assert_eq!(one["nics"][0]["networkId"], w.net.as_str());
    assert_eq!(one["nics"][0]["isDefault"], true);
    assert_eq!(one["publicIps"], json!([]));
    assert_eq!(one["sshKeyName"], "mysshkey");
    // The same under CloudMC's own v1 base.
    let v1 = w
        .ana(
            Method::GET,
            "/cloudmc/api/v1/services/compute-on/test_area/instances",
            None,
        )
        .await;
    assert_eq!(v1.body, list.body);

    // Update by PUT: a hostname change reboots the running instance.
    let r = w
        .ana(
            Method::PUT,
            &format!("{}/{id}", w.instances()),
            Some(json!({"name": "hal", "hostname": "hal_9000"})),
        )
        .await;
    assert_eq!(r.body["taskStatus"], "PENDING", "{}", r.body);
    let done = w.settle(&r, &w.ana).await;
    assert_eq!(
        (&done["name"], &done["hostname"]),
        (&json!("hal"), &json!("hal_9000"))
    );
    // ... and by POST without an operation: only the name, no reboot, done at once.
    let r = w
        .ana(
            Method::POST,
            &format!("{}/{id}", w.instances()),
            Some(json!({"name": "hal-2"})),
        )
        .await;
    assert_eq!(r.body["taskStatus"], "SUCCESS", "{}", r.body);
    assert_eq!(r.body["data"]["name"], "hal-2");
    w.settle(&r, &w.ana).await;

    // Stop (graceful, then a forced one), start, reboot from Stopped as documented.
    assert_eq!(w.op(&id, "stop", None).await["state"], "Stopped");
    assert_eq!(w.op(&id, "start", None).await["state"], "Running");
    let r = w
        .ana(
            Method::POST,
            &format!("{}/{id}?operation=stop", w.instances()),
            Some(json!({"forceStop": true})),
        )
        .await;
    assert_eq!(
        r.body["taskStatus"], "SUCCESS",
        "forced: at once: {}",
        r.body
    );
    assert_eq!(r.body["data"]["state"], "Stopped");
    assert_eq!(w.op(&id, "reboot", None).await["state"], "Running");

    // Change the compute offering to a custom one (cpu and memory required).
    let r = w
        .op(
            &id,
            "changeComputeOffering",
            Some(json!({"computeOfferingId": w.custom, "cpuCount": 2, "memoryInMB": 2048})),
        )
        .await;
    assert_eq!(
        (&r["cpuCount"], &r["memoryInMB"], &r["state"]),
        (&json!(2), &json!(2048), &json!("Running"))
    );

    // Reset the password: in the task result, for the asker's key only.
    let r = w
        .ana(
            Method::POST,
            &format!("{}/{id}?operation=resetPassword", w.instances()),
            None,
        )
        .await;
    let password = w.settle(&r, &w.ana).await["password"]
        .as_str()
        .expect("the new password")
        .to_string();
    assert_eq!(password.len(), 16);
    let staff = w.settle(&r, crate::harness::TOKEN).await;
    assert!(
        staff.get("password").is_none(),
        "another key does not see it: {staff}"
    );
    let log = w.s.get(&format!("/v1/instances/{id}/events")).await;
    assert!(
        !log.body.to_string().contains(&password),
        "never in the log"
    );

    // Change the network (a reboot), associate a key, attach and detach an ISO.
    let moved = w
        .op(&id, "changeNetwork", Some(json!({"networkId": w.net2})))
        .await;
    assert_eq!(moved["networkId"], w.net2.as_str());
    assert!(
        moved["ipAddress"]
            .as_str()
            .unwrap()
            .starts_with("10.164.213.")
    );
    let keyed = w
        .op(
            &id,
            "associateSSHKey",
            Some(json!({"sshKeyName": "my_ssh_key"})),
        )
        .await;
    assert_eq!(keyed["sshKeyName"], "my_ssh_key");
    let attached = w.op(&id, "attachIso", Some(json!({"isoId": w.iso}))).await;
    assert_eq!(attached["isoId"], w.iso.as_str());
    let detached = w.op(&id, "detachIso", None).await;
    assert!(detached.get("isoId").is_none());

    // Destroy (recoverable), recover (to Stopped), destroy with the seed's body (purge).
    let r = w
        .ana(
            Method::DELETE,
            &format!("{}/{id}", w.instances()),
            Some(json!({"purgeImmediately": false})),
        )
        .await;
    assert_eq!(w.settle(&r, &w.ana).await["state"], "Destroyed");
    assert_eq!(w.retrieve(&id).await["state"], "Destroyed");
    assert_eq!(w.op(&id, "recover", None).await["state"], "Stopped");
    let r = w
        .ana(
            Method::DELETE,
            &format!("{}/{id}", w.instances()),
            Some(json!({"deleteSnapshots": true, "purgeImmediately": true,
                "publicIpIdsToRelease": ["fe446d61-a22c-403a-87bf-5351e65dc54d"],
                "volumeIdsToDelete": ["e3d4045d-3ef7-464d-92a3-fc18269f36e2"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let gone = w.settle(&r, &w.ana).await;
    assert_eq!(gone, json!({"id": id}));
    let r = w
        .ana(Method::GET, &format!("{}/{id}", w.instances()), None)
        .await;
    assert_error(&r, 404, 2011);

    // Purge, after a destroy given as query arguments.
    let other = w.create(json!({"name": "temp", "computeOfferingId": w.fixed, "networkId": w.net, "templateId": w.image})).await;
    w.op(&other, "stop", Some(json!({"forceStop": true}))).await;
    let r = w
        .ana(
            Method::DELETE,
            &format!("{}/{other}?purgeImmediately=false", w.instances()),
            None,
        )
        .await;
    assert_eq!(w.settle(&r, &w.ana).await["state"], "Destroyed");
    assert_eq!(w.op(&other, "purge", None).await, json!({"id": other}));

    assert_eq!(
        w.types(&id).await,
        [
            "Created:cloudmc",
            "Provisioned:driver",
            "Updated:cloudmc",
            "RebootRequested:cloudmc",
            "Rebooted:driver",
            "Updated:cloudmc",
            "StopRequested:cloudmc",
            "Stopped:driver",
            "StartRequested:cloudmc",
            "Started:driver",
            "StopRequested:cloudmc",
            "Stopped:cloudmc",
            "RebootRequested:cloudmc",
            "Rebooted:driver",
            "ResizeRequested:cloudmc",
            "Resized:driver",
            "PasswordReset:cloudmc",
            "NetworkChanged:cloudmc",
            "RebootRequested:cloudmc",
            "Rebooted:driver",
            "SshKeyAssociated:cloudmc",
            "IsoAttached:cloudmc",
            "IsoDetached:cloudmc",
            "DestroyRequested:cloudmc",
            "Destroyed:driver",
            "Recovered:cloudmc",
            "DestroyRequested:cloudmc",
            "Destroyed:driver",
            "Purged:driver",
        ]
    );
    let log = w.s.get(&format!("/v1/instances/{id}/events")).await;
    assert_eq!(log.body["items"][0]["actor"], w.ana_id);
}

on_each_backend!(#[tokio::test] async fn every_documented_refusal_in_cloudmcs_shape_appends_nothing);
async fn every_documented_refusal_in_cloudmcs_shape_appends_nothing() {
    let w = world(Server::start(&["--driver-delay-ms", "0"])).await;
    let id = w.create(w.create_body("victim")).await;
    w.op(&id, "stop", Some(json!({"forceStop": true}))).await;
    let before = w.s.position().await;
    let item = format!("{}/{id}", w.instances());

    // The documented invalid state, exactly.
    let r = w
        .ana(Method::POST, &format!("{item}?operation=stop"), None)
        .await;
    let context = assert_error(&r, 400, 2012);
    assert_eq!(
        context,
        json!({"id": id, "currentState": "Stopped", "expectedStates": ["Running", "Stopping"], "type": "instances"})
    );
    assert_eq!(
        r.body["errors"][0]["message"],
        "Cannot stop an instance that isn't in the running or stopping state"
    );
    for (op, body) in [("purge", None), ("recover", None), ("detachIso", None)] {
        let r = w
            .ana(Method::POST, &format!("{item}?operation={op}"), body)
            .await;
        let status = r.status.as_u16();
        assert_eq!(status, 400, "{op}: {}", r.body);
    }

    // Authentication, environment, ids.
    let r = Server::send(w.s.http(Method::GET, &w.instances())).await;
    assert_error(&r, 401, 1000);
    let r = w.call("wrong", Method::GET, &w.instances(), None).await;
    assert_error(&r, 401, 1000);
    let r = w
        .ana(
            Method::GET,
            &format!("{BASE}/services/compute-on/no_such_env/instances"),
            None,
        )
        .await;
    assert_error(&r, 404, 2011);
    let r = w
        .ana(
            Method::GET,
            &format!("{}/6c3a4a1e-0000-4000-8000-000000000000", w.instances()),
            None,
        )
        .await;
    assert_error(&r, 404, 2011);
    let r = w
        .ana(
            Method::GET,
            &format!("{BASE}/tasks/6c3a4a1e-0000-4000-8000-000000000000"),
            None,
        )
        .await;
    assert_error(&r, 404, 2011);
    let r = w
        .ana(Method::GET, &format!("{BASE}/nothing-here"), None)
        .await;
    assert_error(&r, 404, 2011);
    // Not permitted: a manager reads but may not operate; another tenant sees nothing.
    let r = w.call(&w.max, Method::GET, &item, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = w
        .call(
            &w.max,
            Method::POST,
            &format!("{item}?operation=start"),
            None,
        )
        .await;
    assert_error(&r, 403, 1001);
    let r = w
        .call(
            &w.eve,
            Method::GET,
            &format!("{BASE}/services/compute-on/test_area/instances"),
            None,
        )
        .await;
    assert_error(&r, 404, 2011);
    let r = w
        .call(
            &w.eve,
            Method::GET,
            &format!("{BASE}/services/compute-on/other_area/instances/{id}"),
            None,
        )
        .await;
    assert_error(&r, 404, 2011);

    // Operations and bodies.
    let r = w
        .ana(Method::POST, &format!("{item}?operation=hibernate"), None)
        .await;
    assert_error(&r, 400, 2010);
    let r = w
        .ana(
            Method::POST,
            &format!("{item}?operation=attachIso"),
            Some(json!({})),
        )
        .await;
    assert_eq!(assert_error(&r, 400, 2000)["field"], "isoId");
    let r = w
        .ana(
            Method::POST,
            &format!("{item}?operation=attachIso"),
            Some(json!({"isoId": w.boot_iso})),
        )
        .await;
    assert_error(&r, 400, 2001);
    let r = w
        .ana(
            Method::POST,
            &format!("{item}?operation=changeComputeOffering"),
            Some(json!({"computeOfferingId": w.custom})),
        )
        .await;
    assert_eq!(assert_error(&r, 400, 2000)["field"], "cpuCount");
    let r = Server::send(
        w.s.http(Method::POST, &format!("{item}?operation=start"))
            .header("MC-Api-Key", &w.ana)
            .header("Content-Type", "application/json")
            .body("{\"oops\":"),
    )
    .await;
    assert_error(&r, 400, 2001);
    let create = |f: &dyn Fn(&mut Value)| {
        let mut b = json!({"name": "x", "computeOfferingId": w.fixed, "networkId": w.net, "templateId": w.image});
        f(&mut b);
        b
    };
    let taken = w.retrieve(&id).await["ipAddress"].clone();
    for (body, code, field) in [
        (
            create(&|b| {
                b.as_object_mut().unwrap().remove("name");
            }),
            2000,
            Some("name"),
        ),
        (
            create(&|b| {
                b.as_object_mut().unwrap().remove("templateId");
            }),
            2000,
            Some("templateId"),
        ),
        (
            create(&|b| b["templateId"] = json!("5f968ad6-56d0-4d0d-ad7e-f8f4a5b5d986")),
            2001,
            Some("templateId"),
        ),
        (
            create(&|b| b["computeOfferingId"] = json!(w.custom)),
            2000,
            Some("cpuCount"),
        ),
        (
            create(&|b| b["cpuCount"] = json!(2)),
            2001,
            Some("cpuCount"),
        ),
        (
            create(&|b| b["ipAddress"] = json!("192.168.0.5")),
            2001,
            Some("ipAddress"),
        ),
        (
            create(&|b| b["ipAddress"] = taken.clone()),
            2001,
            Some("ipAddress"),
        ),
        (
            create(&|b| b["sshKeyName"] = json!("nobodys")),
            2001,
            Some("sshKeyName"),
        ),
        (
            create(&|b| b["networkId"] = json!("not-a-uuid")),
            2001,
            Some("networkId"),
        ),
    ] {
        let r = w
            .ana(Method::POST, &w.instances(), Some(body.clone()))
            .await;
        let context = assert_error(&r, 400, code);
        if let Some(f) = field {
            assert_eq!(context["field"], f, "{body}: {}", r.body);
        }
    }
    assert_eq!(w.s.position().await, before, "no refusal appended anything");
}

on_each_backend!(#[tokio::test] async fn tasks_survive_a_restart_and_instances_cross_dialects);
async fn tasks_survive_a_restart_and_instances_cross_dialects() {
    let mut s = Server::start(&["--driver-delay-ms", "0"]);
    let tmp = s.take_dir().expect("dir");
    let w = world(s).await;
    let r = w
        .ana(Method::POST, &w.instances(), Some(w.create_body("durable")))
        .await;
    let task = r.body["taskId"].as_str().unwrap().to_string();
    let id = w.settle(&r, &w.ana).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let World {
        mut s,
        ana,
        project,
        image,
        fixed,
        ..
    } = w;
    s.stop();
    let s = Server::start_in(tmp.path(), &["--driver-delay-ms", "0"]);
    let r = Server::send(
        s.http(Method::GET, &format!("{BASE}/tasks/{task}"))
            .header("MC-Api-Key", &ana),
    )
    .await;
    assert_eq!(r.body["taskStatus"], "SUCCESS", "{}", r.body);
    assert_eq!(r.body["result"]["id"], id.as_str());

    // Read and operated natively and through Mogan.
    let native = s.get(&format!("/v1/instances/{id}")).await;
    assert_eq!(
        (&native.body["name"], &native.body["state"]),
        (&json!("durable"), &json!("running"))
    );
    let r = Server::send(
        s.http(Method::PUT, &format!("/mogan/v1/servers/{id}/states/power"))
            .header("X-Auth-Token", &ana)
            .json(&json!({"target": "off"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    s.wait_for_state(&id, "stopped").await;

    // Made natively, operated here.
    let r = s
        .post(
            "/v1/instances",
            json!({"name": "native", "project_id": project, "flavor_id": fixed, "image_id": image}),
        )
        .await;
    let native_id = r.id();
    s.wait_for_state(&native_id, "running").await;
    let r = Server::send(
        s.http(
            Method::POST,
            &format!("{BASE}/services/compute-on/test_area/instances/{native_id}?operation=stop"),
        )
        .header("MC-Api-Key", &ana),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    s.wait_for_state(&native_id, "stopped").await;
    let r = Server::send(
        s.http(
            Method::GET,
            &format!("{BASE}/services/compute-on/{project}/instances"),
        )
        .header("MC-Api-Key", &ana),
    )
    .await;
    assert_eq!(
        r.body["metadata"]["recordCount"], 2,
        "the environment by id too"
    );
    let r = Server::send(
        s.http(Method::GET, &format!("{BASE}/services/compute-on/test_area/instances?page_number=2&page_size=1&sort_by=name&sort_order=ASC"))
            .header("MC-Api-Key", &ana),
    )
    .await;
    assert_eq!(r.body["data"][0]["name"], "native");
    assert_eq!(
        r.body["metadata"],
        json!({"recordCount": 2, "pageSize": 1, "pageCurrent": 2, "sortField": "name", "sortOrder": "ASC"})
    );
}
