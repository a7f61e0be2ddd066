//! Listening sockets and the accepted stream type.
//!
//! TCP listeners are built with socket2 so that `-b` (backlog),
//! SO_REUSEADDR and IPV6_V6ONLY can be set before `listen`. A Unix socket
//! (`-s`) replaces TCP, as in memcached; a stale socket file left by an
//! earlier run is removed first, anything else at that path is an error.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use socket2::{Domain, SockAddr, Socket, Type};

/// One bound, non-blocking listening socket.
pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Starts listening (again: the backlog is only updated).
    pub(crate) fn listen(&self, backlog: i32) -> io::Result<()> {
        let fd = match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix(l, _) => l.as_fd(),
        };
        socket2::SockRef::from(&fd).listen(backlog)
    }

    pub(crate) fn fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l, _) => l.as_raw_fd(),
        }
    }

    /// The address as `stats conns` shows it (`tcp:127.0.0.1:11211`,
    /// `tcp6:[::1]:11211`, `unix:/path`).
    pub(crate) fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => describe_tcp(&a),
                Err(_) => "tcp:?".to_string(),
            },
            Listener::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }

    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }

    /// Accepts one connection: the stream and its peer address as `stats
    /// conns` shows it.
    pub(crate) fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            Listener::Tcp(l) => {
                let (s, addr) = l.accept()?;
                // Replies are written whole; Nagle would only add latency.
                let _ = s.set_nodelay(true);
                Ok((Stream::Tcp(s), describe_tcp(&addr)))
            }
            Listener::Unix(l, _) => {
                let (s, _) = l.accept()?;
                // memcached 1.6.18 prints this for every Unix-socket client.
                Ok((Stream::Unix(s), "?:<AF 0>".to_string()))
            }
        }
    }
}

impl Source for Listener {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.register(r, t, i),
            Listener::Unix(l, _) => l.register(r, t, i),
        }
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.reregister(r, t, i),
            Listener::Unix(l, _) => l.reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.deregister(r),
            Listener::Unix(l, _) => l.deregister(r),
        }
    }
}

pub(crate) fn describe_tcp(a: &SocketAddr) -> String {
    match a {
        SocketAddr::V4(v4) => format!("tcp:{}:{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("tcp6:[{}]:{}", v6.ip(), v6.port()),
    }
}

/// Binds one TCP listener; it listens at once unless `backlog` is None
/// (then [`Listener::listen`] opens it later).
pub(crate) fn bind_tcp(addr: SocketAddr, backlog: Option<i32>) -> io::Result<Listener> {
    let l = crate::net::bind_tcp(addr, backlog)?;
    Ok(Listener::Tcp(TcpListener::from_std(l)))
}

/// Binds the Unix socket at `path` with file mode `mask`.
pub(crate) fn bind_unix(path: &Path, mask: u32, backlog: Option<i32>) -> io::Result<Listener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ))
        }
        Err(_) => {}
    }
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    sock.bind(&SockAddr::unix(path)?)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mask))?;
    if let Some(backlog) = backlog {
        sock.listen(backlog)?;
    }
    let std_listener: std::os::unix::net::UnixListener = sock.into();
    Ok(Listener::Unix(
        UnixListener::from_std(std_listener),
        path.to_path_buf(),
    ))
}

/// An accepted client connection.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        }
    }

    pub(crate) fn fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl Read for Stream {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(r, t, i),
            Stream::Unix(s) => s.register(r, t, i),
        }
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(r, t, i),
            Stream::Unix(s) => s.reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(r),
            Stream::Unix(s) => s.deregister(r),
        }
    }
}
