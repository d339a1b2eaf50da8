//! One test certificate authority per process and a server certificate it signed for
//! `localhost` and `127.0.0.1`: clients trust the CA, as operators trust a proxy's.

use std::sync::OnceLock;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

pub(crate) struct Pki {
    pub(crate) ca_pem: String,
    pub(crate) leaf_der: Vec<u8>,
    pub(crate) leaf_key_der: Vec<u8>,
}

/// The PEM of the CA that signed every test server's certificate.
pub fn ca_pem() -> &'static str {
    &pki().ca_pem
}

pub(crate) fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        // Test set-up: a failure here is a broken test environment, not peer input.
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "chatgw-push test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key")).expect("CA cert");
        let leaf_key = KeyPair::generate().expect("server key");
        let leaf_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("server params");
        let leaf = leaf_params.signed_by(&leaf_key, &ca).expect("server cert");
        Pki { ca_pem: ca.pem(), leaf_der: leaf.der().to_vec(), leaf_key_der: leaf_key.serialize_der() }
    })
}
