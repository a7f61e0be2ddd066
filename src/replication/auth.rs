//! Authentication of the peer link: a challenge-response over a shared
//! secret, HMAC-SHA256. Pure apart from reading the secret file and the
//! OS's random bytes.
//!
//! Each side sends a fresh random nonce in its `Hello`; each then proves it
//! holds the secret by sending
//!
//! ```text
//! HMAC-SHA256(secret, "twincache-repl-v1" || role || own_nonce || peer_nonce
//!                     || own_run_id || peer_run_id || own_node_id || peer_node_id)
//! ```
//!
//! (run ids as u64 big-endian, node ids one byte each), with role `b'D'` for
//! the side that dialed and `b'A'` for the side that accepted. Both nonces
//! make a proof good for one connection only (no replay); the role makes a
//! proof useless on the other side of the same connection (no reflection:
//! a stranger cannot send our own challenge back to us and forward our
//! answer); run and node ids bind it to the two processes of the Hello.
//! The receiver checks the proof in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Read;

type HmacSha256 = Hmac<Sha256>;

/// Role byte of the side that dialed the connection.
pub const ROLE_DIALER: u8 = b'D';
/// Role byte of the side that accepted the connection.
pub const ROLE_ACCEPTOR: u8 = b'A';

/// Domain separation: a MAC made for this purpose and version only.
const CONTEXT: &[u8] = b"twincache-repl-v1";

/// The shared secret of a pair, kept as a keyed HMAC state (the raw bytes
/// are not kept). Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct Secret(HmacSha256);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A secret from its bytes; refuses an empty one.
    pub fn from_bytes(b: &[u8]) -> Result<Secret, String> {
        if b.is_empty() {
            return Err("the replication secret is empty".to_string());
        }
        HmacSha256::new_from_slice(b)
            .map(Secret)
            .map_err(|e| format!("unusable replication secret: {e}"))
    }
}

/// Reads a secret file: contents with trailing whitespace/newlines trimmed;
/// refuses an empty file, and a file readable by group/other
/// (mode & 0o077 != 0) with a clear message (like ssh does for keys).
pub fn load_secret(path: &std::path::Path) -> Result<Secret, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let mut file = std::fs::File::open(path)
        .map_err(|e| format!("cannot open replication secret file {shown}: {e}"))?;
    // mode of the file we opened, not of whatever the path names later
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot stat replication secret file {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "replication secret file {shown} is not a regular file"
        ));
    }
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "replication secret file {shown} is accessible by group or others \
             (mode {:04o}); it must be readable by its owner only: chmod 600 {shown}",
            mode & 0o7777
        ));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read replication secret file {shown}: {e}"))?;
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let secret = Secret::from_bytes(&bytes[..end])
        .map_err(|_| format!("replication secret file {shown} is empty (or only whitespace)"));
    bytes.fill(0);
    secret
}

/// Fills `buf` from the OS's random source (`/dev/urandom`, which never
/// blocks once the kernel pool is seeded at boot). If that cannot be read
/// (no /dev in a chroot), falls back to std's randomly keyed SipHash (keyed
/// from the OS by std itself) over a counter, the time and the pid, and
/// says so once in the log.
fn fill_random(buf: &mut [u8]) {
    let from_os = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(buf));
    if from_os.is_ok() {
        return;
    }
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!("cannot read /dev/urandom; replication nonces come from std's hash keys");
    });
    fallback_random(buf);
}

fn fallback_random(buf: &mut [u8]) {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for chunk in buf.chunks_mut(8) {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        h.write_u128(now);
        h.write_u32(std::process::id());
        let word = h.finish().to_ne_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

/// 16 random bytes from the OS (a handshake nonce).
pub fn nonce() -> [u8; 16] {
    let mut n = [0u8; 16];
    fill_random(&mut n);
    n
}

/// A random u64 (run ids).
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    fill_random(&mut b);
    u64::from_ne_bytes(b)
}

/// One side of a handshake as its Hello told it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Party {
    pub nonce: [u8; 16],
    pub run: u64,
    pub node: u8,
}

fn keyed(secret: &Secret, role: u8, sender: &Party, receiver: &Party) -> HmacSha256 {
    let mut mac = secret.0.clone();
    mac.update(CONTEXT);
    mac.update(&[role]);
    mac.update(&sender.nonce);
    mac.update(&receiver.nonce);
    mac.update(&sender.run.to_be_bytes());
    mac.update(&receiver.run.to_be_bytes());
    mac.update(&[sender.node, receiver.node]);
    mac
}

/// The proof a side sends: HMAC-SHA256(secret, "twincache-repl-v1" || role
/// || own_nonce || peer_nonce || own_run_id || peer_run_id || own_node_id
/// || peer_node_id), role = b'D' for the dialer, b'A' for the acceptor (so
/// a proof can never be reflected back).
pub fn proof(secret: &Secret, role: u8, own: &Party, peer: &Party) -> [u8; 32] {
    keyed(secret, role, own, peer)
        .finalize()
        .into_bytes()
        .into()
}

/// Constant-time check of a received proof: true when `mac` is what the
/// sender (with its role, and its nonce, run and node id as its Hello
/// gave them) had to compute with the shared secret.
pub fn verify(
    secret: &Secret,
    role_of_sender: u8,
    sender: &Party,
    receiver: &Party,
    mac: &[u8; 32],
) -> bool {
    keyed(secret, role_of_sender, sender, receiver)
        .verify_slice(mac)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const N1: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
    const N2: [u8; 16] = [
        16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
    ];
    const RUN_D: u64 = 0x0102_0304_0506_0708;
    const RUN_A: u64 = 0xffff_ffff_ffff_fffe;
    /// The dialer (node 1, nonce N1) and the acceptor (node 2, nonce N2).
    const DIALER: Party = Party {
        nonce: N1,
        run: RUN_D,
        node: 1,
    };
    const ACCEPTOR: Party = Party {
        nonce: N2,
        run: RUN_A,
        node: 2,
    };

    fn secret(s: &str) -> Secret {
        Secret::from_bytes(s.as_bytes()).expect("test secret")
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The dialer proves itself to the acceptor.
    fn dialer_proof(s: &Secret) -> [u8; 32] {
        proof(s, ROLE_DIALER, &DIALER, &ACCEPTOR)
    }

    /// The acceptor's check of the dialer's proof.
    fn acceptor_checks(s: &Secret, mac: &[u8; 32]) -> bool {
        verify(s, ROLE_DIALER, &DIALER, &ACCEPTOR, mac)
    }

    #[test]
    fn proof_matches_the_documented_layout() {
        // computed independently (Python's hmac module) from the layout in
        // the module doc
        assert_eq!(
            hex(&dialer_proof(&secret("correct horse"))),
            "79bdb242ea1c190e00f34c543ff21fcc8a7939d786dbf2393d19cc44d2c4ea56"
        );
    }

    #[test]
    fn hmac_known_answer() {
        // RFC 4231 test case 2 through Secret, to pin the primitive
        let mut m = secret("Jefe").0;
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(&m.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn round_trip_both_directions() {
        let s = secret("s3cret");
        let mac = dialer_proof(&s);
        assert!(acceptor_checks(&s, &mac));
        // and the acceptor's answer, checked by the dialer
        let back = proof(&s, ROLE_ACCEPTOR, &ACCEPTOR, &DIALER);
        assert!(verify(&s, ROLE_ACCEPTOR, &ACCEPTOR, &DIALER, &back));
        assert_ne!(mac, back);
        // a secret with the same bytes loaded separately agrees
        assert!(acceptor_checks(&secret("s3cret"), &mac));
    }

    #[test]
    fn wrong_inputs_fail() {
        let s = secret("s3cret");
        let mac = dialer_proof(&s);
        // wrong secret (also a prefix and an extension of the right one)
        for other in ["s3creT", "s3cre", "s3cret\n", "x"] {
            assert!(!acceptor_checks(&secret(other), &mac), "{other:?}");
        }
        let check =
            |sender: Party, receiver: Party| verify(&s, ROLE_DIALER, &sender, &receiver, &mac);
        // swapped nonces
        assert!(!check(
            Party {
                nonce: N2,
                ..DIALER
            },
            Party {
                nonce: N1,
                ..ACCEPTOR
            }
        ));
        // a stale nonce (replay on a new connection)
        let mut n3 = N2;
        n3[15] ^= 1;
        assert!(!check(
            DIALER,
            Party {
                nonce: n3,
                ..ACCEPTOR
            }
        ));
        // reflected: the dialer's proof offered as the acceptor's
        assert!(!verify(&s, ROLE_ACCEPTOR, &DIALER, &ACCEPTOR, &mac));
        // a stranger reflecting our own challenge: we (acceptor, N2) would
        // accept only a dialer proof over (N1 = theirs, N2 = ours); our own
        // acceptor proof over the same nonces is not one
        let ours = proof(&s, ROLE_ACCEPTOR, &ACCEPTOR, &DIALER);
        assert!(!acceptor_checks(&s, &ours));
        // swapped run ids, swapped node ids, another run id
        assert!(!check(
            Party {
                run: RUN_A,
                ..DIALER
            },
            Party {
                run: RUN_D,
                ..ACCEPTOR
            }
        ));
        assert!(!check(
            Party { node: 2, ..DIALER },
            Party {
                node: 1,
                ..ACCEPTOR
            }
        ));
        assert!(!check(
            Party {
                run: RUN_D + 1,
                ..DIALER
            },
            ACCEPTOR
        ));
        // every single flipped bit of the proof
        for bit in 0..256 {
            let mut m = mac;
            m[bit / 8] ^= 1 << (bit % 8);
            assert!(!acceptor_checks(&s, &m), "bit {bit}");
        }
        assert!(!acceptor_checks(&s, &[0; 32]));
    }

    #[test]
    fn secret_is_never_printed() {
        let s = secret("hunter2-very-secret");
        let shown = format!("{s:?} {s:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(format!("{s:?}"), "Secret(..)");
        assert!(Secret::from_bytes(b"").is_err());
    }

    #[test]
    fn nonces_differ() {
        let a = nonce();
        let b = nonce();
        assert_ne!(a, b);
        assert_ne!(a, [0; 16]);
        assert_ne!(random_u64(), random_u64());
        let mut f1 = [0u8; 13];
        let mut f2 = [0u8; 13];
        fallback_random(&mut f1);
        fallback_random(&mut f2);
        assert_ne!(f1, f2);
    }

    fn temp_file(name: &str, contents: &[u8], mode: u32) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "twincache-auth-test-{}-{}",
            std::process::id(),
            name
        ));
        let _ = std::fs::create_dir_all(&dir);
        let p = dir.join("secret");
        std::fs::write(&p, contents).expect("write temp secret");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p
    }

    #[test]
    fn load_secret_trims_and_checks_mode() {
        let s = secret("s3cret");
        let mac = dialer_proof(&s);

        let p = temp_file("ok", b"s3cret\n\r\n \t", 0o600);
        let loaded = load_secret(&p).expect("a 0600 secret file loads");
        assert!(
            acceptor_checks(&loaded, &mac),
            "trailing whitespace trimmed"
        );

        // leading whitespace is part of the secret
        let p = temp_file("lead", b" s3cret\n", 0o400);
        let loaded = load_secret(&p).expect("a 0400 secret file loads");
        assert!(!acceptor_checks(&loaded, &mac));

        for mode in [0o640, 0o604, 0o644, 0o660, 0o610, 0o601] {
            let p = temp_file(&format!("mode{mode:o}"), b"s3cret\n", mode);
            let err = load_secret(&p).expect_err("group/other access refused");
            assert!(err.contains("chmod 600"), "{err}");
            assert!(err.contains(&format!("{mode:04o}")), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }

        for (name, body) in [("empty", &b""[..]), ("blank", &b" \n\n\t\r\n"[..])] {
            let p = temp_file(name, body, 0o600);
            let err = load_secret(&p).expect_err("an empty secret is refused");
            assert!(err.contains("empty"), "{err}");
        }

        let missing = std::env::temp_dir().join("twincache-auth-test-no-such-file");
        let err = load_secret(&missing).expect_err("missing file");
        assert!(err.contains("cannot open"), "{err}");

        let dir =
            std::env::temp_dir().join(format!("twincache-auth-test-{}-ok", std::process::id()));
        let err = load_secret(&dir);
        assert!(err.is_err());
        let _ = std::fs::remove_dir_all(&dir);
        for name in [
            "lead", "empty", "blank", "mode640", "mode604", "mode644", "mode660", "mode610",
            "mode601",
        ] {
            let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!(
                "twincache-auth-test-{}-{}",
                std::process::id(),
                name
            )));
        }
    }
}
