//! TLS configuration: self-signed certificates around the node key, and
//! verifiers that accept exactly "an ed25519 key that signed this handshake".

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, PeerIncompatible, SignatureScheme,
};
use stratus_types::NodeId;
use x509_parser::oid_registry::OID_SIG_ED25519;

use crate::{Identity, NetError};

/// Server name the dialer puts in the TLS SNI. Meaningless: identities are
/// checked by key, never by name.
pub(crate) const SERVER_NAME: &str = "stratus";

/// How often an idle connection sends a keep-alive.
const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// Concurrent calls (bidirectional streams) a peer may open on one connection.
const MAX_STREAMS: u32 = 32;
/// A connection with no traffic for this long (keep-alives included) is dead.
const MAX_IDLE: Duration = Duration::from_secs(5);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The node's certificate and key, ready for rustls.
pub(crate) struct TlsIdentity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    provider: Arc<CryptoProvider>,
    transport: Arc<quinn::TransportConfig>,
}

impl TlsIdentity {
    /// Makes a self-signed certificate for `identity`'s key.
    pub(crate) fn new(identity: &Identity) -> Result<TlsIdentity, NetError> {
        let tls_err = |what: &str, e: &dyn std::fmt::Display| NetError::Tls(format!("{what}: {e}"));
        let key = PrivatePkcs8KeyDer::from(identity.pkcs8_der()?);
        let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&key, &rcgen::PKCS_ED25519)
            .map_err(|e| tls_err("cannot load node key into rcgen", &e))?;
        let mut params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()])
            .map_err(|e| tls_err("certificate parameters", &e))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, identity.node_id().to_string());
        let cert = params
            .self_signed(&key_pair)
            .map_err(|e| tls_err("cannot self-sign certificate", &e))?;

        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(KEEP_ALIVE));
        // Bounds what one connection can make the receiver hold at once:
        // each call is one bidirectional stream; nothing uses uni streams.
        transport.max_concurrent_bidi_streams(MAX_STREAMS.into());
        transport.max_concurrent_uni_streams(0u32.into());
        transport.max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(MAX_IDLE).map_err(|e| tls_err("idle timeout", &e))?,
        ));

        Ok(TlsIdentity {
            cert: cert.der().clone(),
            key,
            provider: provider(),
            transport: Arc::new(transport),
        })
    }

    #[cfg(test)]
    pub(crate) fn cert_der(&self) -> &[u8] {
        &self.cert
    }

    /// rustls server side: TLS 1.3 only, a client certificate required
    /// (of `expected`'s key, if given), no resumption.
    fn rustls_server(
        &self,
        expected: Option<Expected>,
        alpn: &[u8],
    ) -> Result<rustls::ServerConfig, NetError> {
        let verifier = Arc::new(PeerVerifier::new(&self.provider, expected));
        let mut tls = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| NetError::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .map_err(|e| NetError::Tls(format!("server certificate: {e}")))?;
        tls.alpn_protocols = vec![alpn.to_vec()];
        tls.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        tls.send_tls13_tickets = 0;
        tls.max_early_data_size = 0;
        Ok(tls)
    }

    /// rustls client side: TLS 1.3 only, presents our certificate, accepts
    /// only `expected`'s key (if given), no resumption or early data.
    fn rustls_client(
        &self,
        expected: Option<Expected>,
        alpn: &[u8],
    ) -> Result<rustls::ClientConfig, NetError> {
        let verifier = Arc::new(PeerVerifier::new(&self.provider, expected));
        let mut tls = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| NetError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .map_err(|e| NetError::Tls(format!("client certificate: {e}")))?;
        tls.alpn_protocols = vec![alpn.to_vec()];
        tls.resumption = rustls::client::Resumption::disabled();
        tls.enable_early_data = false;
        Ok(tls)
    }

    /// QUIC server side (any node may connect; who may do what is decided
    /// per request).
    pub(crate) fn server_config(&self) -> Result<quinn::ServerConfig, NetError> {
        let tls = self.rustls_server(None, stratus_proto::ALPN)?;
        let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| NetError::Tls(format!("quic server config: {e}")))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
        config.transport_config(self.transport.clone());
        Ok(config)
    }

    /// QUIC client side for one dial: accepts only `expected` (if given). A
    /// mismatching key is recorded in `mismatch` so the caller can report
    /// it precisely.
    pub(crate) fn client_config(
        &self,
        expected: Option<NodeId>,
        mismatch: Arc<Mutex<Option<NodeId>>>,
    ) -> Result<quinn::ClientConfig, NetError> {
        let expected = expected.map(|id| Expected { id, mismatch });
        let tls = self.rustls_client(expected, stratus_proto::ALPN)?;
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| NetError::Tls(format!("quic client config: {e}")))?;
        let mut config = quinn::ClientConfig::new(Arc::new(quic));
        config.transport_config(self.transport.clone());
        Ok(config)
    }

    /// TLS over a relayed byte stream, client side: only `peer`'s key is
    /// accepted.
    pub(crate) fn tunnel_client(&self, peer: NodeId) -> Result<rustls::ClientConfig, NetError> {
        let expected = Expected {
            id: peer,
            mismatch: Arc::default(),
        };
        self.rustls_client(Some(expected), TUNNEL_ALPN)
    }

    /// TLS over a relayed byte stream, server side: only `peer`'s key is
    /// accepted.
    pub(crate) fn tunnel_server(&self, peer: NodeId) -> Result<rustls::ServerConfig, NetError> {
        let expected = Expected {
            id: peer,
            mismatch: Arc::default(),
        };
        self.rustls_server(Some(expected), TUNNEL_ALPN)
    }
}

/// ALPN of TLS sessions carried inside relayed streams.
pub(crate) const TUNNEL_ALPN: &[u8] = b"stratus-tunnel/1";

/// Extracts the ed25519 public key from a DER certificate.
///
/// Only the SubjectPublicKeyInfo matters; it must be an ed25519 key (OID
/// 1.3.101.112) of 32 bytes that decodes to a valid curve point.
pub(crate) fn node_id_from_cert(der: &[u8]) -> Result<NodeId, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("malformed certificate: {e}"))?;
    let spki = cert.public_key();
    if spki.algorithm.algorithm != OID_SIG_ED25519 {
        return Err(format!(
            "certificate key is not ed25519 (algorithm {})",
            spki.algorithm.algorithm
        ));
    }
    let bytes: [u8; 32] = spki
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| {
            format!(
                "ed25519 key has {} bytes, expected 32",
                spki.subject_public_key.data.len()
            )
        })?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|e| format!("invalid ed25519 public key: {e}"))?;
    Ok(NodeId(bytes))
}

/// The identity a dialer insists on, and where to report a different one.
#[derive(Debug)]
struct Expected {
    id: NodeId,
    mismatch: Arc<Mutex<Option<NodeId>>>,
}

/// Verifier used on both sides: the certificate must carry an ed25519 key
/// (optionally a specific one) and the TLS 1.3 handshake must be signed by it.
#[derive(Debug)]
struct PeerVerifier {
    algorithms: WebPkiSupportedAlgorithms,
    expected: Option<Expected>,
}

impl PeerVerifier {
    fn new(provider: &CryptoProvider, expected: Option<Expected>) -> PeerVerifier {
        PeerVerifier {
            algorithms: provider.signature_verification_algorithms,
            expected,
        }
    }

    fn check_cert(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let id = node_id_from_cert(end_entity).map_err(|reason| {
            tracing::debug!(%reason, "rejecting peer certificate");
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(std::io::Error::other(reason)),
            )))
        })?;
        if let Some(expected) = &self.expected {
            if expected.id != id {
                if let Ok(mut slot) = expected.mismatch.lock() {
                    *slot = Some(id);
                }
                return Err(rustls::Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ));
            }
        }
        Ok(())
    }

    fn check_tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if dss.scheme != SignatureScheme::ED25519 {
            return Err(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ));
        }
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check_cert(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.check_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl ClientCertVerifier for PeerVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check_cert(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.check_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}
