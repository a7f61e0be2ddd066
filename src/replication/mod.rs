//! Dual-master replication between two twincache nodes.
//!
//! The peer link speaks a length-prefixed binary protocol of its own on the
//! replication port (`-X`), never on the client port.
//!
//! - [`frame`]: the frames of the peer link, bytes <-> [`frame::Frame`];
//!   pure, no I/O.
//! - [`auth`]: the shared-secret challenge-response (HMAC-SHA256 over both
//!   sides' nonces, run ids and node ids), secret files and OS randomness.

pub mod auth;
pub mod frame;
