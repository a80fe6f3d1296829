//! The coverage table's rows for Istio's `Gateway` (see `table.rs`).

use super::Support::*;
use super::table::{BOOKINFO, GW_L4};
use super::{Field, row};

const NO_GATEWAY_TLS: &str = "an unknown TLS mode: such a server gets no listener \
     (PASSTHROUGH, SIMPLE, MUTUAL, OPTIONAL_MUTUAL, ISTIO_MUTUAL and AUTO_PASSTHROUGH are served)";
const GW_TLS: &str = "gateway_l4.rs::a_gateway_terminates_https_by_server_name";
const GW_PINS: &str = "gateway_l4.rs::a_mutual_server_takes_only_the_client_certificates_it_pins";
const GW_CERTS: &str = "gateway_l4.rs::a_gateway_reloads_certificate_files_and_picks_rsa_or_ecdsa";

pub static GATEWAY: &[Field] = &[
    row("Gateway", "spec", Applied(BOOKINFO)),
    row("Gateway", "spec.selector", Applied(BOOKINFO)),
    row("Gateway", "spec.servers", Applied(BOOKINFO)),
    row("Gateway", "spec.servers[].port", Applied(BOOKINFO)),
    row("Gateway", "spec.servers[].port.number", Applied(BOOKINFO)),
    row("Gateway", "spec.servers[].port.name", Bookkeeping),
    row(
        "Gateway",
        "spec.servers[].port.protocol",
        Values(
            &["HTTP", "HTTP2", "GRPC", "GRPC-WEB", "TCP", "MONGO", "TLS", "HTTPS"],
            "a TLS server is served with `tls.mode` PASSTHROUGH (routed by SNI) or one that ends TLS (then routed as TCP); an HTTPS one with SIMPLE or MUTUAL",
        ),
    ),
    row(
        "Gateway",
        "spec.servers[].port.targetPort",
        NotApplied("the gateway listens on the port number (plus weft up's --port-offset)"),
    ),
    row("Gateway", "spec.servers[].hosts", Applied(BOOKINFO)),
    row("Gateway", "spec.servers[].bind", NotApplied("the gateway binds its --listen-ip")),
    row("Gateway", "spec.servers[].defaultEndpoint", NotApplied("only used for sidecar ingress in Istio")),
    row("Gateway", "spec.servers[].name", Bookkeeping),
    row("Gateway", "spec.servers[].tls", Applied(GW_L4)),
    row(
        "Gateway",
        "spec.servers[].tls.mode",
        Values(
            &["PASSTHROUGH", "SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL", "ISTIO_MUTUAL", "AUTO_PASSTHROUGH"],
            NO_GATEWAY_TLS,
        ),
    ),
    row("Gateway", "spec.servers[].tls.httpsRedirect", Applied(GW_TLS)),
    row("Gateway", "spec.servers[].tls.serverCertificate", Applied(GW_CERTS)),
    row("Gateway", "spec.servers[].tls.privateKey", Applied(GW_CERTS)),
    row("Gateway", "spec.servers[].tls.caCertificates", Untested),
    row("Gateway", "spec.servers[].tls.caCrl", NotApplied("client certificates are not checked against a CRL")),
    row("Gateway", "spec.servers[].tls.credentialName", Applied(GW_TLS)),
    row("Gateway", "spec.servers[].tls.credentialNames", Applied(GW_CERTS)),
    row("Gateway", "spec.servers[].tls.subjectAltNames", Applied(GW_TLS)),
    row("Gateway", "spec.servers[].tls.verifyCertificateSpki", Applied(GW_PINS)),
    row("Gateway", "spec.servers[].tls.verifyCertificateHash", Applied(GW_PINS)),
    row("Gateway", "spec.servers[].tls.minProtocolVersion", Applied(GW_TLS)),
    row("Gateway", "spec.servers[].tls.maxProtocolVersion", Applied(GW_TLS)),
    row("Gateway", "spec.servers[].tls.cipherSuites", Applied(GW_TLS)),
];
