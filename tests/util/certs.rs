//! A self-signed certificate for the tests that speak TLS (`tls.rs`,
//! `browser.rs`): made by rcgen for `localhost` and 127.0.0.1 in a fresh
//! temporary directory, removed on drop; none is checked in.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A self-signed certificate and its key as PEM files, removed on drop.
pub struct Certs {
    dir: PathBuf,
}

impl Certs {
    /// A new certificate and key, in their own directory.
    pub fn new() -> Certs {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mio-selectors-tls-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
        Certs { dir }
    }
    /// The certificate (PEM).
    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }
    /// Its private key (PEM).
    pub fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }
    /// Where a file `name` beside the certificate would be.
    #[allow(dead_code)] // tls.rs only
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    /// `contents` as a file `name` beside the certificate.
    #[allow(dead_code)] // tls.rs only
    pub fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
