//! Socket set-up shared by the client server and the replication link
//! (a leaf: no knowledge of either).

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// A non-blocking TCP listener bound to `addr` (SO_REUSEADDR; IPv6 sockets
/// are v6-only so `0.0.0.0` and `::` can share a port). It listens at once
/// with `backlog`, or not yet when None (connections are refused until
/// the caller calls `listen`).
pub fn bind_tcp(addr: SocketAddr, backlog: Option<i32>) -> io::Result<TcpListener> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    if let Some(backlog) = backlog {
        sock.listen(backlog)?;
    }
    Ok(sock.into())
}
