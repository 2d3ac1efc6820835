//! Request bodies as DRF read them: a JSON object or form fields, validated field by
//! field with every error collected into one `{"field": ["message"]}` answer, and the
//! hyperlinks of a create body resolved to the resources they name.

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::links::{self, BadLink, parse_link};
use super::{Body, NcError};
use crate::api::failure::{Failure, Input};
use crate::api::request::{media_type, parse_json};
use crate::domain::catalog::{Kind, Resource, Spec};
use crate::query::{QueryError, Reader};
use crate::service::InstanceRequest;

/// NodeConductor's length limits.
pub const HOSTNAME_CHARS: usize = 80;
pub const DESCRIPTION_CHARS: usize = 200;

/// A request body as DRF read it: a JSON object, or form fields.
pub fn body_fields(req: &HttpRequest, body: &Body) -> Result<Map<String, Value>, NcError> {
    if body.bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match media_type(req).as_deref() {
        None | Some("application/json") => match parse_json::<Value>(&body.bytes)? {
            Value::Object(m) => Ok(m),
            _ => Err(NcError::Fields(
                [("non_field_errors".to_string(), json!(["Invalid data"]))]
                    .into_iter()
                    .collect(),
            )),
        },
        Some("application/x-www-form-urlencoded") => {
            let text = std::str::from_utf8(&body.bytes).map_err(|_| {
                NcError::Failure(Failure::bad_request(
                    Input::InvalidBody,
                    "the form is not UTF-8",
                ))
            })?;
            let mut m = Map::new();
            for (k, v) in links::url_pairs(text) {
                m.insert(k, Value::String(v));
            }
            Ok(m)
        }
        Some(other) => Err(NcError::detail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("Unsupported media type '{other}' in request."),
        )),
    }
}

/// Collects field errors the way a DRF serializer does: every field, then one answer.
#[derive(Default)]
pub struct Errors(pub Map<String, Value>);

impl Errors {
    pub fn add(&mut self, field: &str, message: impl Into<Value>) {
        self.0.insert(field.into(), json!([message.into()]));
    }

    pub fn finish(self) -> Result<(), NcError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(NcError::Fields(self.0))
        }
    }
}

pub fn text_field(
    fields: &Map<String, Value>,
    name: &str,
    required: bool,
    max: usize,
    errors: &mut Errors,
) -> Option<String> {
    match fields.get(name) {
        None | Some(Value::Null) if required => {
            errors.add(name, "This field is required.");
            None
        }
        None | Some(Value::Null) => None,
        Some(v) => {
            let s = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let n = s.chars().count();
            if required && s.trim().is_empty() {
                errors.add(name, "This field is required.");
                None
            } else if n > max {
                errors.add(
                    name,
                    format!("Ensure this value has at most {max} characters (it has {n})."),
                );
                None
            } else {
                Some(s)
            }
        }
    }
}

/// A hyperlinked field: its uuid, if it names a `kind` resource the caller may read.
pub fn link_field(
    r: &Reader<'_>,
    fields: &Map<String, Value>,
    name: &str,
    collection: &str,
    kind: Kind,
    errors: &mut Errors,
) -> Result<Option<Resource>, QueryError> {
    let raw = match fields.get(name) {
        None | Some(Value::Null) => {
            errors.add(name, "This field is required.");
            return Ok(None);
        }
        Some(Value::String(s)) => s,
        Some(other) => {
            let kind_name = match other {
                Value::Number(_) => "int",
                Value::Bool(_) => "bool",
                Value::Array(_) => "list",
                _ => "dict",
            };
            errors.add(
                name,
                format!("Incorrect type.  Expected url string, received {kind_name}."),
            );
            return Ok(None);
        }
    };
    let id = match parse_link(raw, collection) {
        Ok(id) => id,
        Err(bad) => {
            errors.add(name, bad.message());
            return Ok(None);
        }
    };
    match r.resource(kind, &id.to_string()) {
        Ok(res) => Ok(Some(res)),
        Err(QueryError::NotFound { .. }) => {
            errors.add(name, BadLink::NoObject.message());
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// `security_groups`: a list of `{"name": ...}`, each a known group.
pub fn group_names(
    r: &Reader<'_>,
    fields: &Map<String, Value>,
    errors: &mut Errors,
) -> Result<Vec<String>, QueryError> {
    let items = match fields.get("security_groups") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.0.insert(
                "security_groups".into(),
                json!([{"non_field_errors": ["Expected a list of items."]}]),
            );
            return Ok(Vec::new());
        }
    };
    let mut names = Vec::new();
    let mut each = Vec::new();
    let mut bad = false;
    for item in items {
        match item.get("name") {
            Some(Value::String(name)) if r.resource_named(Kind::SecurityGroup, name)?.is_some() => {
                if !names.contains(name) {
                    names.push(name.clone());
                }
                each.push(json!({}));
            }
            Some(Value::String(name)) => {
                bad = true;
                each.push(json!({"name": [format!("There is no group with name {name}")]}));
            }
            _ => {
                bad = true;
                each.push(json!({"name": ["This field is required."]}));
            }
        }
    }
    if bad {
        errors
            .0
            .insert("security_groups".into(), Value::Array(each));
    }
    Ok(names)
}

/// What a valid create body resolves to.
pub struct Resolved {
    pub request: InstanceRequest,
    pub key_owner: Option<Uuid>,
}

pub fn resolve_create(
    r: &Reader<'_>,
    fields: &Map<String, Value>,
) -> Result<Result<Resolved, NcError>, QueryError> {
    let mut errors = Errors::default();
    let hostname = text_field(fields, "hostname", true, HOSTNAME_CHARS, &mut errors);
    let description = text_field(fields, "description", false, DESCRIPTION_CHARS, &mut errors);
    let template = link_field(
        r,
        fields,
        "template",
        "iaas-templates",
        Kind::Image,
        &mut errors,
    )?;
    let flavor = link_field(r, fields, "flavor", "flavors", Kind::Flavor, &mut errors)?;
    let project = link_field(r, fields, "project", "projects", Kind::Project, &mut errors)?;
    let key = link_field(
        r,
        fields,
        "ssh_public_key",
        "keys",
        Kind::SshKey,
        &mut errors,
    )?;
    let groups = group_names(r, fields, &mut errors)?;
    if let Err(e) = errors.finish() {
        return Ok(Err(e));
    }
    let (Some(hostname), Some(template), Some(flavor), Some(project), Some(key)) =
        (hostname, template, flavor, project, key)
    else {
        return Ok(Err(NcError::Failure(Failure::Internal(
            "a required field passed validation without a value".into(),
        ))));
    };
    let key_owner = match key.spec {
        Spec::SshKey { owner, .. } => owner,
        _ => None,
    };
    Ok(Ok(Resolved {
        key_owner,
        request: InstanceRequest {
            name: hostname.trim().to_string(),
            description,
            project_id: project.id,
            flavor_id: flavor.id,
            image_id: template.id,
            ssh_key_id: Some(key.id),
            security_groups: groups,
            ..InstanceRequest::default()
        },
    }))
}
