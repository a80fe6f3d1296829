//! The TLS server name a client asks for, read from its ClientHello by
//! rustls (Envoy's `tls_inspector`), without terminating TLS: the bytes
//! read are handed back to be replayed to the upstream.

use bytes::BytesMut;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// A ClientHello larger than this is not waited for (Envoy's inspector
/// reads at most 64 KiB; real ones are well under 16).
const MAX_HELLO: usize = 16 * 1024;
/// How long a client may take to send its ClientHello (Envoy's listener
/// filter timeout is 15 s).
const HELLO_TIMEOUT: Duration = Duration::from_secs(15);

/// The server name (lowercase) and the bytes read: None for a connection
/// that is not TLS, names no server, or is too slow or too large to say.
pub async fn read(down: &mut TcpStream) -> (Option<String>, BytesMut) {
    let mut buf = BytesMut::with_capacity(1024);
    let name = tokio::time::timeout(HELLO_TIMEOUT, async {
        while buf.len() < MAX_HELLO {
            match down.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            match hello(&buf) {
                Hello::Complete(name) => return name,
                Hello::NotTls => return None,
                Hello::Partial => {}
            }
        }
        None
    })
    .await;
    (name.ok().flatten(), buf)
}

enum Hello {
    Complete(Option<String>),
    Partial,
    NotTls,
}

fn hello(bytes: &[u8]) -> Hello {
    let mut acceptor = rustls::server::Acceptor::default();
    if acceptor.read_tls(&mut &bytes[..]).is_err() {
        return Hello::NotTls;
    }
    match acceptor.accept() {
        Ok(Some(accepted)) => Hello::Complete(accepted.client_hello().server_name().map(str::to_ascii_lowercase)),
        Ok(None) => Hello::Partial,
        Err(_) => Hello::NotTls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_is_not_tls() {
        assert!(matches!(hello(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Hello::NotTls));
        // A TLS record header promising more than has arrived: wait for it.
        assert!(matches!(hello(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]), Hello::Partial));
    }

    #[test]
    fn a_client_hello_names_its_server_once_complete() {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let name = "Pay.Example.com".try_into().unwrap();
        let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        let mut bytes = Vec::new();
        conn.write_tls(&mut bytes).unwrap();
        assert!(matches!(hello(&bytes[..bytes.len() / 2]), Hello::Partial));
        assert!(matches!(hello(&bytes), Hello::Complete(Some(n)) if n == "pay.example.com"));
    }
}
