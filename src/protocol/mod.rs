//! The memcached text protocol: bytes in, typed commands out; reply text out.
//!
//! No sockets, no clock, no store. The parser is zero-copy: keys and values
//! borrow from the caller's read buffer. Wire text is produced only in
//! [`encode`].

pub mod command;
pub mod encode;
pub mod error;
pub mod meta;
pub mod parse;

pub use command::{Command, Keys, StoreVerb};
pub use error::{ProtocolError, Recovery};
pub use meta::{MetaCmd, MetaFlags, MetaVerb, SetMode};
pub use parse::{parse, Limits, Parsed};

/// Longest key memcached accepts.
pub const KEY_MAX_LEN: usize = 250;
/// A command line (other than `get`/`gets`/`gat`/`gats`) longer than this
/// without a newline closes the connection, as in memcached.
pub const LINE_MAX_LEN: usize = 2048;
/// Bound for retrieval lines (`get k1 k2 ...`): memcached lets them grow
/// without limit; we close the connection past this many bytes.
pub const GET_LINE_MAX_LEN: usize = 256 * 1024;
