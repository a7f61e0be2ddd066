//! `-l`: memcached's listen-list syntax resolved into socket addresses.

use super::*;

// ---------------------------------------------------------------------------
// -l
// ---------------------------------------------------------------------------

pub(super) fn listen_error(message: String) -> ConfigError {
    ConfigError::usage(EX_OSERR, message)
}

/// Resolves memcached's `-l` list (entries separated by ',' or ';'; each
/// `host`, `host:port`, `[v6]:port`, a bare IPv6 address with two or more
/// colons, or `*` for every interface) into socket addresses. An entry's
/// own port overrides `port`. Host names resolve to all their addresses.
pub fn resolve_listen(spec: &str, port: u16) -> Result<Vec<SocketAddr>, ConfigError> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for raw in spec.split([',', ';']) {
        let mut entry = raw.trim();
        if entry.is_empty() {
            continue;
        }
        // Per-listener prefixes of memcached 1.6.
        loop {
            if let Some(rest) = entry
                .strip_prefix("notls:")
                .or_else(|| entry.strip_prefix("btls:"))
                .or_else(|| entry.strip_prefix("mtls:"))
            {
                let _ = rest;
                return Err(ConfigError::usage(
                    EX_USAGE,
                    format!("-l {entry}: twincache has no TLS support"),
                ));
            }
            if let Some(rest) = entry.strip_prefix("proto[") {
                let (proto, tail) = rest
                    .split_once("]:")
                    .ok_or_else(|| listen_error(format!("-l {entry}: bad proto[...] prefix")))?;
                match proto {
                    "ascii" | "negotiating" | "auto" => {}
                    "binary" => {
                        return Err(ConfigError::usage(
                            EX_USAGE,
                            format!(
                                "-l {entry}: twincache speaks the text protocol only, \
                                 not the binary protocol"
                            ),
                        ))
                    }
                    _ => {
                        return Err(listen_error(format!(
                            "-l {entry}: unknown protocol \"{proto}\""
                        )))
                    }
                }
                entry = tail;
                continue;
            }
            if let Some(rest) = entry.strip_prefix("tag[") {
                let (_, tail) = rest
                    .split_once("]:")
                    .ok_or_else(|| listen_error(format!("-l {entry}: bad tag[...] prefix")))?;
                entry = tail;
                continue;
            }
            break;
        }
        let (host, port_text): (&str, Option<&str>) = if let Some(rest) = entry.strip_prefix('[') {
            let (h, tail) = rest
                .split_once(']')
                .ok_or_else(|| listen_error(format!("Invalid IPv6 address: \"{entry}\"")))?;
            if tail.is_empty() {
                (h, None)
            } else if let Some(p) = tail.strip_prefix(':') {
                (h, Some(p))
            } else {
                return Err(listen_error(format!("Invalid IPv6 address: \"{entry}\"")));
            }
        } else if entry.matches(':').count() >= 2 {
            (entry, None)
        } else if let Some((h, p)) = entry.split_once(':') {
            (h, Some(p))
        } else {
            (entry, None)
        };
        let port = match port_text {
            None => port,
            Some(p) => {
                if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(listen_error(format!("Invalid port number: \"{p}\"")));
                }
                p.parse::<u16>()
                    .map_err(|_| listen_error(format!("Invalid port number: \"{p}\"")))?
            }
        };
        let addrs: Vec<SocketAddr> = if host == "*" {
            vec![
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
            ]
        } else if host.is_empty() {
            return Err(listen_error(format!("-l {entry}: missing host")));
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            vec![SocketAddr::new(ip, port)]
        } else {
            (host, port)
                .to_socket_addrs()
                .map_err(|e| listen_error(format!("cannot resolve -l host \"{host}\": {e}")))?
                .collect()
        };
        if addrs.is_empty() {
            return Err(listen_error(format!(
                "-l host \"{host}\" has no address to listen on"
            )));
        }
        for a in addrs {
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    Ok(out)
}
