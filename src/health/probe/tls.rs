//! The TLS client under checktype=negotiate, service=https.

use std::net::{IpAddr, TcpStream};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use super::net::{arm, Deadline};

pub(super) type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// Accepts whatever certificate the real server shows.
///
/// ldirectord does not verify certificates by default, and real servers
/// behind a load balancer routinely carry self-signed certificates, or the
/// VIP's name rather than their own address: the health check asks "does
/// this server answer HTTPS correctly", not "is it who it claims to be"
/// (clients verify the certificate against the VIP's name, not us). The
/// handshake signatures are still checked, which costs nothing and keeps
/// the handshake an honest TLS one.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One config for every check: building it is the costly part, and it
/// holds nothing per server. The provider is named explicitly so that
/// another crate in the tree enabling aws-lc-rs cannot make rustls's
/// process-default lookup ambiguous.
fn config() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("tls config: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

/// The name to send as SNI: the Host header's name without its port. An
/// IP address (the default Host) makes rustls send no SNI, as RFC 6066
/// asks.
fn server_name(host: &str, target: IpAddr) -> ServerName<'static> {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None if host.matches(':').count() == 1 => host.split(':').next().unwrap_or(host),
        None => host,
    };
    ServerName::try_from(name.to_string()).unwrap_or(ServerName::IpAddress(target.into()))
}

/// Runs the handshake to completion within the deadline, so a server that
/// accepts but never speaks TLS fails as "tls handshake: timeout".
pub(super) fn connect(
    mut sock: TcpStream,
    host: &str,
    target: IpAddr,
    deadline: &Deadline,
) -> Result<TlsStream, String> {
    let mut conn = ClientConnection::new(config()?, server_name(host, target))
        .map_err(|e| format!("tls: {e}"))?;
    while conn.is_handshaking() {
        arm(&sock, deadline)
            .and_then(|()| conn.complete_io(&mut sock))
            .map_err(|e| deadline.reason("tls handshake", &e))?;
    }
    Ok(StreamOwned::new(conn, sock))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_is_the_host_name_without_port() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let name = |h| match server_name(h, ip) {
            ServerName::DnsName(n) => n.as_ref().to_string(),
            other => format!("{other:?}"),
        };
        assert_eq!(name("www.example.com:8443"), "www.example.com");
        assert_eq!(name("www.example.com"), "www.example.com");
        assert!(matches!(
            server_name("192.0.2.7:443", ip),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[2001:db8::1]:443", ip),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("2001:db8::1", ip),
            ServerName::IpAddress(_)
        ));
    }
}
