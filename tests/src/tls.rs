//! Throwaway certificates for TLS tests, made at test time with the
//! `openssl` command into a directory of the test's own: a CA, and a server
//! certificate it signs for `localhost` and 127.0.0.1. Nothing is kept in
//! the source tree and nothing outlives the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// A CA and a server certificate signed by it.
pub struct TestPki {
    dir: tempfile::TempDir,
}

impl TestPki {
    /// Generates a P-256 CA named `ca_name` and a server certificate for
    /// `localhost` and 127.0.0.1, valid for two days.
    pub fn generate(ca_name: &str) -> anyhow::Result<TestPki> {
        let dir = tempfile::Builder::new()
            .prefix("frontdesk-pki-")
            .tempdir()?;
        let pki = TestPki { dir };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        pki.openssl(
            &[
                "req", "-x509", "-days", "2", "-keyout", "ca.key", "-out", "ca.pem",
            ],
            &ec,
            &[
                "-subj",
                &format!("/CN={ca_name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        )?;
        pki.openssl(
            &["req", "-keyout", "server.key", "-out", "server.csr"],
            &ec,
            &["-subj", "/CN=localhost"],
        )?;
        std::fs::write(
            pki.path("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )?;
        let serial = format!("0x{}", uuid::Uuid::new_v4().simple());
        pki.openssl(
            &[
                "x509",
                "-req",
                "-days",
                "2",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
            ],
            &["-CAkey", "ca.key", "-set_serial", &serial],
            &["-extfile", "server.ext", "-out", "server.crt"],
        )?;
        Ok(pki)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn openssl(&self, a: &[&str], b: &[&str], c: &[&str]) -> anyhow::Result<()> {
        let out = Command::new("openssl")
            .args(a)
            .args(b)
            .args(c)
            .current_dir(self.dir.path())
            .output()
            .context("cannot run openssl")?;
        if !out.status.success() {
            bail!(
                "openssl {a:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The CA certificate's PEM file.
    pub fn ca_file(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.ca_file()).expect("the CA was generated")
    }

    /// The server certificate, its key and the CA's certificate (PEM), as
    /// servers that take one file with the whole chain (ejabberd's
    /// `certfiles`, which ignores a certificate whose chain it cannot
    /// complete) want it.
    pub fn server_chain_and_key(&self) -> Vec<u8> {
        let mut pem = std::fs::read(self.path("server.crt")).expect("generated");
        pem.extend(std::fs::read(self.path("server.key")).expect("generated"));
        pem.extend(self.ca_pem());
        pem
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
