//! Kinds weft reads only in part: objects that run pods, Secrets, and
//! kinds kept as information. Their fields beyond what weft reads are
//! accepted without a warning (a pod spec has hundreds that do not concern
//! a mesh); a field weft reads with the wrong type is still an error.

use crate::diag::{Diagnostic, Severity, codes};
use crate::kinds::Role;
use crate::resource::Spec;
use crate::tree::{Node, Seg, Value};
use crate::types::mesh_config::{MESH_CONFIG_MAP, MESH_KEY};
use crate::types::*;
use base64::Engine;
use serde::de::DeserializeOwned;
use std::sync::Arc;

type Read = Result<(ObjectMeta, Spec), Box<Diagnostic>>;

/// `node`, a document of `kind` whose role is not `Read`.
pub(crate) fn read(file: &Arc<str>, node: &Node, kind: &'static str, role: Role) -> Read {
    match role {
        Role::Pods if kind == "Pod" => {
            let d: PodDoc = lenient(file, node)?;
            let labels = d.metadata.labels.clone();
            Ok((d.metadata, Spec::Pods(d.spec.pods(kind, labels))))
        }
        Role::Pods => {
            let d: ControllerDoc = lenient(file, node)?;
            Ok((d.metadata, Spec::Pods(d.spec.pods(kind))))
        }
        Role::Secret => secret(file, node),
        _ if kind == "ConfigMap" => config_map(file, node),
        _ => {
            let d: MetaDoc = lenient(file, node)?;
            Ok((d.metadata, Spec::Inert(kind)))
        }
    }
}

fn secret(file: &Arc<str>, node: &Node) -> Read {
    let d: SecretDoc = lenient(file, node)?;
    let mut spec = SecretSpec { type_: d.type_.clone(), tls: None, ca_pem: None };
    let pem = |key: &str| -> Result<Vec<u8>, Box<Diagnostic>> {
        if let Some(plain) = d.string_data.get(key) {
            return Ok(plain.clone().into_bytes());
        }
        let path = [Seg::Key("data".into()), Seg::Key(key.into())];
        let Some(encoded) = d.data.get(key) else {
            let msg = format!("a `{TLS_SECRET}` Secret needs `data[\"{key}\"]`");
            let hint = "add the PEM, base64-encoded, under `data`, or plain under `stringData`";
            return Err(error(file, node, &path[..1], codes::MISSING_FIELD, msg, hint));
        };
        base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|e| {
            let hint = "`data` values are base64 (`base64 -w0 tls.crt`); plain PEM goes under `stringData`";
            error(file, node, &path, codes::INVALID_VALUE, format!("`{key}` is not base64: {e}"), hint)
        })
    };
    if d.type_.as_deref() == Some(TLS_SECRET) {
        spec.tls = Some(TlsKeyPair { cert_pem: pem("tls.crt")?, key_pem: pem("tls.key")? });
    }
    if let Some(key) =
        ["ca.crt", "cacert"].into_iter().find(|k| d.data.contains_key(*k) || d.string_data.contains_key(*k))
    {
        spec.ca_pem = Some(pem(key)?);
    }
    Ok((d.metadata, Spec::Secret(spec)))
}

/// A ConfigMap: the `istio` one of the root namespace is the mesh's
/// config (`data.mesh`, YAML), any other is kept as information.
fn config_map(file: &Arc<str>, node: &Node) -> Read {
    let d: ConfigMapDoc = lenient(file, node)?;
    let ns = d.metadata.namespace.as_deref().unwrap_or("default");
    let mesh = d.data.get(MESH_KEY).filter(|_| d.metadata.name == MESH_CONFIG_MAP && ns == ROOT_NAMESPACE);
    let Some(mesh) = mesh else { return Ok((d.metadata, Spec::Inert("ConfigMap"))) };
    let path = [Seg::Key("data".into()), Seg::Key(MESH_KEY.into())];
    let config: MeshConfig = serde_saphyr::from_str(mesh).map_err(|e| {
        let hint = "`data.mesh` holds Istio's MeshConfig as YAML (a `|` block)";
        error(file, node, &path, codes::INVALID_VALUE, format!("the mesh config does not parse: {e}"), hint)
    })?;
    Ok((d.metadata, Spec::MeshConfig(config)))
}

fn error(file: &Arc<str>, node: &Node, path: &[Seg], code: &'static str, msg: String, hint: &str) -> Box<Diagnostic> {
    Box::new(crate::load::diag_at(file, node, path, Severity::Error, code, msg, Some(hint.to_owned())))
}

/// Deserializes the fields `T` has, ignoring the others; a type error names
/// the field.
fn lenient<T: DeserializeOwned>(file: &Arc<str>, node: &Node) -> Result<T, Box<Diagnostic>> {
    let json = node.to_json();
    serde_path_to_error::deserialize(&json).map_err(|e| {
        let path = crate::load::error_path(e.path());
        let hint = "check the value's type against the Kubernetes reference";
        error(file, node, &path, codes::BAD_FIELD, e.into_inner().to_string(), hint)
    })
}

/// The documents of a Kubernetes `List` (`kubectl get -o yaml` writes one),
/// or None when `node` is not a List.
pub(crate) fn list_items(node: &Node) -> Option<Vec<Node>> {
    let is_list = node.get("kind").and_then(Node::as_str) == Some("List")
        && node.get("apiVersion").and_then(Node::as_str) == Some("v1");
    if !is_list {
        return None;
    }
    match node.get("items").map(|n| &n.value) {
        Some(Value::Seq(items)) => Some(items.clone()),
        _ => Some(Vec::new()),
    }
}
