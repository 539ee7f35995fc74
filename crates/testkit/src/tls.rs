//! Certificates made by a test: a private CA and the server and client
//! certificates it signs, written as PEM files into a directory of the
//! test's own.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::unique_name;

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// A certificate authority of the test's own. Its directory is removed on
/// drop.
pub struct TestCa {
    directory: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    ca_file: PathBuf,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

impl TestCa {
    /// A new CA (its certificate in [`TestCa::ca_file`]).
    pub fn new() -> Self {
        let directory = std::env::temp_dir().join(unique_name("stoker_test_ca"));
        std::fs::create_dir_all(&directory).expect("CA directory");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, "Stoker test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let ca_file = directory.join("ca.pem");
        std::fs::write(&ca_file, cert.pem()).expect("CA file");
        Self {
            directory,
            issuer: Issuer::new(params, key),
            ca_file,
        }
    }

    /// The CA's certificate (PEM), for the clients' trust.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// A server certificate for `names` (DNS names or IP addresses),
    /// written as `{file_name}.pem` and `{file_name}.key`.
    pub fn server(&self, file_name: &str, names: &[&str]) -> CertFiles {
        self.issue(file_name, names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate whose common name (and DNS name) is `name`.
    pub fn client(&self, file_name: &str, name: &str) -> CertFiles {
        self.issue(file_name, &[name], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, file_name: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> CertFiles {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("certificate names");
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, first);
        }
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate().expect("certificate key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("signed certificate");
        let files = CertFiles {
            cert: self.directory.join(format!("{file_name}.pem")),
            key: self.directory.join(format!("{file_name}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).expect("certificate file");
        std::fs::write(&files.key, key.serialize_pem()).expect("key file");
        files
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}
