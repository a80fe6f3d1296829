//! Reading files and folders of YAML/JSON into typed resources.
//!
//! Each document becomes a located [`Node`] tree first, then a typed spec.
//! Type errors and unknown fields are reported by field path and mapped back
//! to line:column through the tree.

use crate::diag::{Diagnostic, Severity, codes};
use crate::resource::{EndpointSliceData, Origin, Resource, Spec};
use crate::tree::{Node, Pos, Seg, Value, path_string};
use crate::types::*;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::documents::{Doc, EndpointSliceDoc, EndpointsDoc};
use crate::kinds;
use crate::load_limits::parse_options;
pub use crate::load_limits::{LoadLimits, over_bytes, over_documents};

/// What loading produced: the resources that parsed, and every problem found.
#[derive(Debug, Default, Clone)]
pub struct Loaded {
    pub resources: Vec<Resource>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Config files under `paths` (files as given; folders walked for
/// `*.yaml`, `*.yml`, `*.json`, sorted so the order is stable).
pub fn config_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else {
            std::fs::metadata(p)?;
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let hidden = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            walk(&p, out)?;
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
            out.push(p);
        }
    }
    Ok(())
}

/// Loads every config file under `paths`, within the default limits.
pub fn load_paths(paths: &[PathBuf]) -> Loaded {
    load_paths_within(paths, &LoadLimits::default())
}

/// Loads every config file under `paths`; a config past `limits` is one
/// error. The Gateway API's resources are lowered into Istio's.
pub fn load_paths_within(paths: &[PathBuf], limits: &LoadLimits) -> Loaded {
    let mut loaded = load_files_within(paths, limits);
    crate::gateway_api::lower(&mut loaded);
    loaded
}

/// `load_paths_within` without lowering: for a caller that loads a config
/// file by file, and lowers once it has them all.
pub fn load_files_within(paths: &[PathBuf], limits: &LoadLimits) -> Loaded {
    let mut loaded = Loaded::default();
    let files = match config_files(paths) {
        Ok(f) => f,
        Err(e) => {
            let shown: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
            loaded.diagnostics.push(io_diag(&shown.join(", "), &e));
            return loaded;
        }
    };
    let bytes: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    if let Some(d) = over_bytes(paths, bytes, limits) {
        loaded.diagnostics.push(d);
        return loaded;
    }
    for file in files {
        let name = file.display().to_string();
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let one = parse_str_within(&name, &text, limits);
                loaded.resources.extend(one.resources);
                loaded.diagnostics.extend(one.diagnostics);
            }
            Err(e) => loaded.diagnostics.push(io_diag(&name, &e)),
        }
    }
    if let Some(d) = over_documents(paths, loaded.resources.len(), limits) {
        loaded.diagnostics.push(d);
    }
    loaded
}

fn io_diag(file: &str, e: &std::io::Error) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        code: codes::IO,
        file: file.into(),
        pos: Pos::default(),
        resource: None,
        path: String::new(),
        message: format!("cannot read: {e}"),
        hint: Some("check that the path exists and is readable".into()),
    }
}

/// Parses one file's text (YAML or JSON, one or many documents).
pub fn parse_str(file: &str, text: &str) -> Loaded {
    parse_str_within(file, text, &LoadLimits::default())
}

/// `parse_str` within `limits`.
pub fn parse_str_within(file: &str, text: &str, limits: &LoadLimits) -> Loaded {
    let file: Arc<str> = file.into();
    let mut loaded = Loaded::default();
    let docs: Vec<Node> = match serde_saphyr::from_multiple_with_options(text, parse_options(text.len(), limits)) {
        Ok(d) => d,
        Err(e) => {
            loaded.diagnostics.push(syntax_diag(&file, text, &e));
            return loaded;
        }
    };
    // A `List`'s items are documents of their own.
    let docs = docs.into_iter().flat_map(|d| crate::load_other::list_items(&d).unwrap_or_else(|| vec![d]));
    for node in docs {
        if matches!(node.value, Value::Null) {
            continue;
        }
        match to_resource(&file, node) {
            Ok((res, warnings)) => {
                loaded.diagnostics.extend(warnings);
                if let Some(r) = res {
                    loaded.resources.push(r);
                }
            }
            Err(d) => loaded.diagnostics.push(*d),
        }
    }
    loaded.diagnostics.sort_by_key(|d| (d.pos.line, d.pos.col));
    loaded
}

fn syntax_diag(file: &Arc<str>, text: &str, e: &serde_saphyr::Error) -> Diagnostic {
    let (line, col) = e.location().map_or((0, 0), |l| (l.line() as u32, l.column() as u32));
    let raw = e.without_snippet().to_string();
    // The library appends its own "at line X column Y"; ours is in front.
    let message = raw.split(" at line ").next().unwrap_or(&raw).trim().to_owned();
    Diagnostic {
        severity: Severity::Error,
        code: codes::YAML_SYNTAX,
        file: file.clone(),
        pos: Pos { line, col },
        resource: None,
        path: String::new(),
        hint: Some(syntax_hint(&message, text, line as usize, col as usize)),
        message: format!("invalid YAML: {message}"),
    }
}

fn syntax_hint(message: &str, text: &str, line: usize, col: usize) -> String {
    if message.contains("budget breached") {
        return "the file expands past the loader's limits (nested aliases, or a very large file): \
                write it out without aliases, or split it"
            .into();
    }
    if message.contains("tab") {
        return format!("YAML indents with spaces only: replace the tab on line {line} with spaces");
    }
    message
        .contains("expected '-'")
        .then(|| indentation_hint(text, line, col))
        .flatten()
        .unwrap_or_else(|| "check the indentation and the `-` of list items around this line".into())
}

/// For a `key:` indented to where a list item's `-` was expected, names the
/// key it most likely belongs beside: the nearest key above at a smaller
/// indentation, i.e. the one that owns the list.
fn indentation_hint(text: &str, line: usize, col: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let bad = lines.get(line.checked_sub(1)?)?;
    let key = bad.trim_start().split(':').next()?.trim();
    if key.is_empty() || key.starts_with('-') || !bad.contains(':') {
        return None;
    }
    for above in lines[..line - 1].iter().rev() {
        let trimmed = above.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = above.len() - trimmed.len();
        let item = trimmed.strip_prefix("- ").map(str::trim_start);
        let (owner, owner_col) = match item {
            Some(rest) => (rest, above.len() - rest.len()),
            None => (trimmed, indent),
        };
        if owner_col + 1 < col {
            let owner_key = owner.split(':').next()?.trim();
            if owner_key.is_empty() {
                return None;
            }
            return Some(format!(
                "`{key}` is indented into the `{owner_key}` list; `{key}` belongs beside `{owner_key}`, \
                 not inside it: indent `{key}:` to column {} like `{owner_key}:` (line {})",
                owner_col + 1,
                lines.iter().position(|l| std::ptr::eq(*l, *above)).map_or(0, |i| i + 1)
            ));
        }
    }
    None
}

pub(crate) fn diag_at(
    file: &Arc<str>,
    node: &Node,
    path: &[Seg],
    sev: Severity,
    code: &'static str,
    msg: String,
    hint: Option<String>,
) -> Diagnostic {
    Diagnostic {
        severity: sev,
        code,
        file: file.clone(),
        pos: node.pos_of(path),
        resource: None,
        path: path_string(path),
        message: msg,
        hint,
    }
}

type DocResult = Result<(Option<Resource>, Vec<Diagnostic>), Box<Diagnostic>>;

fn to_resource(file: &Arc<str>, node: Node) -> DocResult {
    let err = |path: &[Seg], code, msg: String, hint: Option<String>| {
        Box::new(diag_at(file, &node, path, Severity::Error, code, msg, hint))
    };
    if !matches!(node.value, Value::Map(_)) {
        return Err(err(
            &[],
            codes::NOT_A_RESOURCE,
            "a document must be a mapping with apiVersion, kind and metadata".into(),
            None,
        ));
    }
    let field = |k: &str| node.get(k).and_then(Node::as_str).map(str::to_owned);
    let api_version = field("apiVersion").ok_or_else(|| {
        err(
            &[],
            codes::NOT_A_RESOURCE,
            "missing `apiVersion`".into(),
            Some("add e.g. `apiVersion: networking.istio.io/v1`".into()),
        )
    })?;
    let kind = field("kind").ok_or_else(|| {
        err(&[], codes::NOT_A_RESOURCE, "missing `kind`".into(), Some("add e.g. `kind: VirtualService`".into()))
    })?;
    let at_kind = [Seg::Key("kind".into())];
    let gateway_api = kinds::is_gateway_api(&api_version);
    if gateway_api && kinds::lookup_in(&api_version, &kind).is_none() {
        let read: Vec<&str> = kinds::GATEWAY_API.iter().map(|k| k.name).collect();
        let msg = format!("unknown kind `{kind}` of the Kubernetes Gateway API");
        let hint = format!("weft knows {} of it", read.join(", "));
        return Err(err(&at_kind, codes::UNKNOWN_KIND, msg, Some(hint)));
    }
    let Some(known) = kinds::lookup_in(&api_version, &kind) else {
        let hint = match kinds::closest(&kind) {
            Some(k) => format!("did you mean `{k}`?"),
            None => format!(
                "weft reads {} (and Kubernetes workloads for their pods)",
                kinds::read_kinds().collect::<Vec<_>>().join(", ")
            ),
        };
        return Err(err(&at_kind, codes::UNKNOWN_KIND, format!("unknown kind `{kind}`"), Some(hint)));
    };
    if !known.api_versions.contains(&api_version.as_str()) {
        let hint = format!("use one of: {}", known.api_versions.join(", "));
        return Err(err(
            &[Seg::Key("apiVersion".into())],
            codes::UNKNOWN_KIND,
            format!("`{kind}` is not served under apiVersion `{api_version}`"),
            Some(hint),
        ));
    }
    let kind_name = if gateway_api && known.name == "Gateway" { crate::gateway_api::GATEWAY_KIND } else { known.name };
    match known.role {
        kinds::Role::Read => {}
        kinds::Role::NotApplied(instead) => {
            let msg = format!("{kind} is not applied by this version of weft; it is ignored");
            let d = diag_at(file, &node, &at_kind, Severity::Warning, codes::NOT_APPLIED, msg, Some(instead.into()));
            return Ok((None, vec![d]));
        }
        role => {
            let (meta, spec) = match crate::load_other::read(file, &node, kind_name, role) {
                Ok(doc) => doc,
                Err(d) => return Ok((None, vec![*d])),
            };
            return finish(file, node, api_version, meta, spec, Vec::new());
        }
    }
    let mut warnings = Vec::new();
    // A document that does not deserialize still reports its unknown
    // fields beside the error: a typo is often the error's cause.
    let typed_doc = |warnings: &mut Vec<Diagnostic>| -> Result<(ObjectMeta, Spec), Box<Diagnostic>> {
        Ok(match kind_name {
            "Endpoints" => {
                let d: EndpointsDoc = typed(file, &node, warnings)?;
                (d.metadata, Spec::Endpoints(d.subsets))
            }
            "EndpointSlice" => {
                let d: EndpointSliceDoc = typed(file, &node, warnings)?;
                let data = EndpointSliceData { address_type: d.address_type, endpoints: d.endpoints, ports: d.ports };
                (d.metadata, Spec::EndpointSlice(data))
            }
            "Service" => spec_of(file, &node, warnings, Spec::Service)?,
            "Gateway" => spec_of(file, &node, warnings, Spec::Gateway)?,
            "VirtualService" => spec_of(file, &node, warnings, Spec::VirtualService)?,
            "DestinationRule" => spec_of(file, &node, warnings, Spec::DestinationRule)?,
            "ServiceEntry" => spec_of(file, &node, warnings, Spec::ServiceEntry)?,
            "WorkloadEntry" => spec_of(file, &node, warnings, Spec::WorkloadEntry)?,
            "Workload" => spec_of(file, &node, warnings, Spec::Workload)?,
            "Sidecar" => spec_of(file, &node, warnings, Spec::Sidecar)?,
            "AuthorizationPolicy" => spec_of(file, &node, warnings, Spec::AuthorizationPolicy)?,
            "PeerAuthentication" => spec_of(file, &node, warnings, Spec::PeerAuthentication)?,
            "RequestAuthentication" => spec_of(file, &node, warnings, Spec::RequestAuthentication)?,
            "Telemetry" => spec_of(file, &node, warnings, Spec::Telemetry)?,
            "GatewayClass" => spec_of(file, &node, warnings, Spec::GatewayClass)?,
            crate::gateway_api::GATEWAY_KIND => spec_of(file, &node, warnings, Spec::KubeGateway)?,
            "HTTPRoute" => spec_of(file, &node, warnings, Spec::KubeHttpRoute)?,
            "ReferenceGrant" => spec_of(file, &node, warnings, Spec::ReferenceGrant)?,
            "GRPCRoute" => spec_of(file, &node, warnings, Spec::KubeGrpcRoute)?,
            "TCPRoute" => spec_of(file, &node, warnings, Spec::KubeTcpRoute)?,
            "TLSRoute" => spec_of(file, &node, warnings, Spec::KubeTlsRoute)?,
            _ => unreachable!("kinds are checked above"),
        })
    };
    let (meta, spec) = match typed_doc(&mut warnings) {
        Ok(doc) => doc,
        Err(e) => {
            warnings.push(*e);
            return Ok((None, warnings));
        }
    };
    finish(file, node, api_version, meta, spec, warnings)
}

/// The resource, once its name is checked; `warnings` name it.
fn finish(
    file: &Arc<str>,
    node: Node,
    api_version: String,
    meta: ObjectMeta,
    spec: Spec,
    mut warnings: Vec<Diagnostic>,
) -> DocResult {
    if meta.name.is_empty() {
        let hint = "every resource needs a name: `metadata: {name: my-name}`".to_owned();
        let d = diag_at(
            file,
            &node,
            &[Seg::Key("metadata".into())],
            Severity::Error,
            codes::MISSING_FIELD,
            "missing `metadata.name`".into(),
            Some(hint),
        );
        return Err(Box::new(d));
    }
    let resource = Resource {
        api_version,
        meta,
        spec,
        origin: Origin { file: file.clone(), node: Arc::new(node), derived_from: None },
    };
    let key = resource.key();
    for w in &mut warnings {
        w.resource = Some(key.clone());
    }
    Ok((Some(resource), warnings))
}

fn spec_of<S: DeserializeOwned + Default>(
    file: &Arc<str>,
    node: &Node,
    warnings: &mut Vec<Diagnostic>,
    wrap: fn(S) -> Spec,
) -> Result<(ObjectMeta, Spec), Box<Diagnostic>> {
    let d: Doc<S> = typed(file, node, warnings)?;
    Ok((d.metadata, wrap(d.spec.unwrap_or_default())))
}

/// Deserializes `node` into `T`; type errors become one error, unknown fields
/// one warning each.
fn typed<T: DeserializeOwned>(
    file: &Arc<str>,
    node: &Node,
    warnings: &mut Vec<Diagnostic>,
) -> Result<T, Box<Diagnostic>> {
    let json = node.to_json();
    let mut unknown: Vec<Vec<Seg>> = Vec::new();
    let mut on_ignored = |p: serde_ignored::Path<'_>| unknown.push(ignored_path(&p));
    let de = serde_ignored::Deserializer::new(&json, &mut on_ignored);
    let result: Result<T, _> = serde_path_to_error::deserialize(de);
    let result = result.map_err(|e| field_error(file, node, e, &unknown));
    // A typo the error already names is not warned of again.
    let named = result.as_ref().err().and_then(|(_, typo)| typo.as_ref());
    // Only a document with unknown fields pays for finding what they were meant to be.
    let structs = if unknown.is_empty() { Default::default() } else { crate::schema::structs::<T>() };
    for path in unknown.iter().filter(|p| Some(*p) != named) {
        let Some((Seg::Key(name), parent)) = path.split_last() else { continue };
        let fields = crate::schema::pattern(&structs, parent).and_then(|p| structs.get(&p));
        let hint = match fields.and_then(|fields| crate::fields::closest(fields, name)) {
            Some(m) => format!("did you mean `{m}`?"),
            None => format!(
                "check the spelling and indentation of `{name}`; field names are camelCase as in the Istio and Kubernetes docs"
            ),
        };
        let msg = format!("unknown field `{name}`; it is ignored");
        warnings.push(diag_at(file, node, path, Severity::Warning, codes::UNKNOWN_FIELD, msg, Some(hint)));
    }
    result.map_err(|(d, _)| d)
}

/// Where a deserialization error is, as a field path.
pub(crate) fn error_path(path: &serde_path_to_error::Path) -> Vec<Seg> {
    path.iter()
        .filter_map(|s| match s {
            serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
            serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
            _ => None,
        })
        .collect()
}

/// The error of a document that did not deserialize, and the unknown
/// field it names as the likely cause: a misspelt required field is both
/// unknown and missing.
fn field_error<E: std::fmt::Display>(
    file: &Arc<str>,
    node: &Node,
    e: serde_path_to_error::Error<E>,
    unknown: &[Vec<Seg>],
) -> (Box<Diagnostic>, Option<Vec<Seg>>) {
    let path = error_path(e.path());
    let inner = e.into_inner().to_string();
    let mut typo = None;
    let hint = if let Some(missing) = inner.strip_prefix("missing field `").and_then(|r| r.strip_suffix('`')) {
        typo = unknown.iter().find(|u| match u.split_last() {
            Some((Seg::Key(k), parent)) => parent == path.as_slice() && crate::fields::closest(&[missing], k).is_some(),
            _ => false,
        });
        Some(match typo.and_then(|u| u.last()) {
            Some(Seg::Key(k)) => format!("`{k}` here is not a field: did you mean `{missing}`?"),
            _ => "add the field; it has no default".to_owned(),
        })
    } else if inner.contains("invalid type") {
        Some("check the value's type (number, string, list or map) against the Istio/Kubernetes reference".to_owned())
    } else {
        None
    };
    (Box::new(diag_at(file, node, &path, Severity::Error, codes::BAD_FIELD, inner, hint)), typo.cloned())
}

fn ignored_path(p: &serde_ignored::Path<'_>) -> Vec<Seg> {
    use serde_ignored::Path as P;
    let mut out = match p {
        P::Root => return Vec::new(),
        P::Seq { parent, .. }
        | P::Map { parent, .. }
        | P::Some { parent }
        | P::NewtypeStruct { parent }
        | P::NewtypeVariant { parent } => ignored_path(parent),
    };
    match p {
        P::Seq { index, .. } => out.push(Seg::Index(*index)),
        P::Map { key, .. } => out.push(Seg::Key(key.clone())),
        _ => {}
    }
    out
}
