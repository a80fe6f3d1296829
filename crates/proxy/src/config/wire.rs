//! Resources as they arrived from the control plane, kept in wire form
//! until a config compiles them (`Raw`, `Wire`).

use super::CompileError;
use bytes::Bytes;
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster::ClusterDiscoveryType};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::sync::Arc;

/// The last accepted resources of each type, as received.
#[derive(Debug, Default, Clone)]
pub struct Raw {
    pub listeners: Arc<RawMap<Listener>>,
    pub routes: Arc<RawMap<RouteConfiguration>>,
    pub clusters: Arc<RawMap<Cluster>>,
    pub endpoints: Arc<RawMap<ClusterLoadAssignment>>,
}

/// Resources by name; values shared, so merging an update copies pointers.
pub type RawMap<M> = BTreeMap<Arc<str>, Wire<M>>;

/// One resource kept in its wire form and decoded when a config compiles.
/// A decoded Envoy proto is mostly empty fields: a one-endpoint
/// `ClusterLoadAssignment` takes ~4 KB decoded against ~100 bytes on the
/// wire, which with 10,000 services was most of the proxy's memory.
///
/// Once compiled, clusters and route tables are kept in their compiled
/// form only, and their bytes give way to a digest (`spend`): enough to
/// tell whether a resend changed anything.
pub struct Wire<M> {
    form: Form,
    _type: PhantomData<fn() -> M>,
}

#[derive(Clone)]
enum Form {
    Bytes(Bytes),
    /// SipHash-1-3 (128 bits) of bytes let go.
    Spent([u64; 2]),
}

fn digest(bytes: &[u8]) -> [u64; 2] {
    use siphasher::sip128::Hasher128;
    let mut h = siphasher::sip128::SipHasher13::new();
    std::hash::Hasher::write(&mut h, bytes);
    let d = h.finish128();
    [d.h1, d.h2]
}

impl<M: Message + Default> Wire<M> {
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Wire { form: Form::Bytes(bytes.into()), _type: PhantomData }
    }

    pub fn encode(m: &M) -> Self {
        Wire::new(m.encode_to_vec())
    }

    pub fn decode(&self) -> Result<M, CompileError> {
        // From a slice: a clone of the `Bytes` would allocate its shared
        // header (24 bytes a resource, kept while the resource is).
        M::decode(&self.held()?[..]).map_err(undecodable::<M>)
    }

    /// The wire bytes, shared (decoding from them borrows instead of copying).
    pub fn bytes(&self) -> Result<Bytes, CompileError> {
        self.held().cloned()
    }

    fn held(&self) -> Result<&Bytes, CompileError> {
        match &self.form {
            Form::Bytes(b) => Ok(b),
            Form::Spent(_) => Err(spent_error::<M>()),
        }
    }
}

impl<M> Wire<M> {
    /// The resource once compiled: its digest, equal to the `Wire` of the
    /// same bytes, so an unchanged resend is recognised.
    pub fn spend(&self) -> Self {
        let form = match &self.form {
            Form::Bytes(b) => Form::Spent(digest(b)),
            spent => spent.clone(),
        };
        Wire { form, _type: PhantomData }
    }

    pub fn is_spent(&self) -> bool {
        matches!(self.form, Form::Spent(_))
    }
}

/// Spends the bytes of every resource of `map`, unless all are spent already.
pub fn spend_all<M>(map: &mut Arc<RawMap<M>>) {
    if map.values().any(|w| !w.is_spent()) {
        *map = Arc::new(map.iter().map(|(k, w)| (k.clone(), w.spend())).collect());
    }
}

/// A spent resource asked to decode: the caller should have used what was
/// compiled from it. A bug, reported as a NACK rather than a panic.
fn spent_error<M>() -> CompileError {
    CompileError::new(format!(
        "{} was compiled earlier and only its digest is kept, but its compiled form is missing (a bug in weft; reconnecting to the control plane resends it)",
        type_name::<M>()
    ))
}

/// Bytes that are not an `M`: what failed and what to check.
pub(crate) fn undecodable<M>(e: prost::DecodeError) -> CompileError {
    CompileError::new(format!(
        "cannot decode {}: {e} (the control plane sent bytes that are not an Envoy v3 {0}; is it an xDS server of a compatible version?)",
        type_name::<M>()
    ))
}

/// The last segment of a proto type's Rust path (`Cluster`, `Listener`).
fn type_name<M>() -> &'static str {
    std::any::type_name::<M>().rsplit("::").next().unwrap_or("resource")
}

impl<M> Clone for Wire<M> {
    fn clone(&self) -> Self {
        Wire { form: self.form.clone(), _type: PhantomData }
    }
}

impl<M> PartialEq for Wire<M> {
    fn eq(&self, other: &Self) -> bool {
        match (&self.form, &other.form) {
            (Form::Bytes(a), Form::Bytes(b)) => a == b,
            (Form::Spent(a), Form::Spent(b)) => a == b,
            (Form::Bytes(b), Form::Spent(d)) | (Form::Spent(d), Form::Bytes(b)) => digest(b) == *d,
        }
    }
}

impl<M> std::fmt::Debug for Wire<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.form {
            Form::Bytes(b) => write!(f, "{} ({} bytes)", type_name::<M>(), b.len()),
            Form::Spent(_) => write!(f, "{} (compiled; digest kept)", type_name::<M>()),
        }
    }
}

/// The name of any of the four resource types: field 1 of each (Listener
/// and Cluster `name`, RouteConfiguration `name`, ClusterLoadAssignment
/// `cluster_name`); read without decoding the rest.
#[derive(Clone, PartialEq, prost::Message)]
struct NameOnly {
    #[prost(string, tag = "1")]
    name: String,
}

/// A resource's name, read from its wire form.
pub fn wire_name<M>(bytes: &[u8]) -> Result<String, CompileError> {
    NameOnly::decode(bytes).map(|n| n.name).map_err(undecodable::<M>)
}

/// EDS name of a cluster (its `service_name`, else its name), if it uses EDS.
pub fn eds_name(c: &Cluster) -> Option<String> {
    let eds = matches!(c.cluster_discovery_type, Some(ClusterDiscoveryType::Type(3)));
    eds.then(|| {
        c.eds_cluster_config
            .as_ref()
            .map(|e| e.service_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| c.name.clone())
    })
}

/// The route table names the listeners ask for over RDS.
pub fn rds_names(listeners: &RawMap<Listener>) -> BTreeSet<Arc<str>> {
    let mut out = BTreeSet::new();
    for l in listeners.values().filter_map(|w| w.decode().ok()) {
        for fc in &l.filter_chains {
            for f in &fc.filters {
                if let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type
                    && any.type_url.ends_with("HttpConnectionManager")
                    && let Ok(hcm) = HttpConnectionManager::decode(any.value.as_slice())
                    && let Some(http_connection_manager::RouteSpecifier::Rds(rds)) = hcm.route_specifier
                {
                    out.insert(rds.route_config_name.into());
                }
            }
        }
    }
    out
}
