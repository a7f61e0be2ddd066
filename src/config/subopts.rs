//! `-o` sub-options: honoured, accepted as tuning knobs, or refused, with
//! memcached's range checks and messages.

use super::*;

// ---------------------------------------------------------------------------
// -o sub-options
// ---------------------------------------------------------------------------

/// What we do with an accepted sub-option.
pub(super) enum SubOpt {
    /// Honoured by twincache.
    Honoured,
    /// Accepted for compatibility, no effect yet.
    Knob,
}

/// Splits a `-o` argument the way getsubopt(3) walks it: a trailing comma
/// ends the list, any other empty token is an (illegal) empty sub-option.
pub(super) fn split_subopts(arg: &str) -> Vec<&str> {
    if arg.is_empty() {
        return Vec::new();
    }
    let mut tokens: Vec<&str> = arg.split(',').collect();
    if tokens.len() > 1 && tokens.last() == Some(&"") {
        tokens.pop();
    }
    tokens
}

pub(super) fn missing(what: &str) -> ConfigError {
    ConfigError::usage(1, format!("Missing {what}"))
}

pub(super) fn bad(message: impl Into<String>) -> ConfigError {
    ConfigError::usage(1, message)
}

/// Applies one `-o` token to `cfg`. `chunk_changed` records an explicit
/// `slab_chunk_max`.
pub(super) fn apply_subopt(
    cfg: &mut Config,
    token: &str,
    chunk_changed: &mut bool,
) -> Result<SubOpt, ConfigError> {
    let (name, value) = match token.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (token, None),
    };
    let t = &mut cfg.tuning;
    let knob = Ok(SubOpt::Knob);
    match name {
        "maxconns_fast" => {
            cfg.maxconns_fast = true;
            Ok(SubOpt::Honoured)
        }
        "no_maxconns_fast" => {
            cfg.maxconns_fast = false;
            Ok(SubOpt::Honoured)
        }
        "hashpower" => {
            let v = value.ok_or_else(|| missing("numeric argument for hashpower"))?;
            let n = atoi(v);
            if n < 12 {
                return Err(bad(format!(
                    "Initial hashtable multiplier of {n} is too low"
                )));
            }
            if n > 32 {
                return Err(bad(format!(
                    "Initial hashtable multiplier of {n} is too high\n\
                     Choose a value based on \"STAT hash_power_level\" from a running instance"
                )));
            }
            cfg.hashpower_init = n as u32;
            Ok(SubOpt::Honoured)
        }
        "idle_timeout" => {
            let v = value.ok_or_else(|| missing("numeric argument for idle_timeout"))?;
            cfg.idle_timeout = atoi(v).max(0) as u32;
            Ok(SubOpt::Honoured)
        }
        "no_hashexpand" => {
            t.hash_expand = false;
            knob
        }
        "slab_reassign" => {
            t.slab_reassign = true;
            knob
        }
        "no_slab_reassign" => {
            t.slab_reassign = false;
            knob
        }
        "slab_automove" => {
            let n = value.map_or(1, atoi);
            if !(0..=2).contains(&n) {
                return Err(bad("slab_automove must be between 0 and 2"));
            }
            t.slab_automove = n;
            Ok(SubOpt::Honoured)
        }
        "no_slab_automove" => {
            t.slab_automove = 0;
            Ok(SubOpt::Honoured)
        }
        "slab_automove_ratio" => {
            let v = value.ok_or_else(|| missing("slab_automove_ratio argument"))?;
            let r = atof(v);
            if r <= 0.0 || r > 1.0 {
                return Err(bad("slab_automove_ratio must be > 0 and < 1"));
            }
            t.slab_automove_ratio = r;
            knob
        }
        "slab_automove_window" => {
            let v = value.ok_or_else(|| missing("slab_automove_window argument"))?;
            let n = atoi(v);
            if n < 3 {
                return Err(bad("slab_automove_window must be > 2"));
            }
            t.slab_automove_window = n as u32;
            knob
        }
        "slab_automove_freeratio" => {
            let v = value.ok_or_else(|| missing("slab_automove_freeratio argument"))?;
            let r: f64 = v
                .trim()
                .parse()
                .map_err(|_| bad("could not parse argument to slab_automove_freeratio"))?;
            t.slab_automove_freeratio = r;
            knob
        }
        "slab_chunk_max" => {
            let v = value.ok_or_else(|| missing("slab_chunk_max argument"))?;
            let n =
                safe_strtol(v).ok_or_else(|| bad("could not parse argument to slab_chunk_max"))?;
            if n <= 0 {
                return Err(ConfigError::usage(
                    EX_USAGE,
                    "slab_chunk_max must be greater than 0",
                ));
            }
            t.slab_chunk_max = n;
            *chunk_changed = true;
            Ok(SubOpt::Honoured)
        }
        "slab_sizes" => {
            let v = value.ok_or_else(|| missing("slab_sizes argument"))?;
            t.slab_sizes = Some(v.to_string());
            Ok(SubOpt::Honoured)
        }
        "no_chunked_items" => {
            t.slab_chunk_max = SLAB_PAGE_SIZE as i32;
            knob
        }
        "tail_repair_time" => {
            let v = value.ok_or_else(|| missing("numeric argument for tail_repair_time"))?;
            let n = atoi(v);
            if n < 10 {
                return Err(bad("Cannot set tail_repair_time to less than 10 seconds"));
            }
            t.tail_repair_time = n;
            knob
        }
        "hash_algorithm" => {
            let v = value.ok_or_else(|| missing("hash_algorithm argument"))?;
            match v {
                "jenkins" | "murmur3" | "xxh3" => t.hash_algorithm = v.to_string(),
                _ => {
                    return Err(bad(
                        "Unknown hash_algorithm option (jenkins, murmur3, xxh3)",
                    ))
                }
            }
            knob
        }
        "lru_crawler" => {
            t.lru_crawler = true;
            Ok(SubOpt::Honoured)
        }
        "no_lru_crawler" => {
            t.lru_crawler = false;
            Ok(SubOpt::Honoured)
        }
        "lru_crawler_sleep" => {
            let v = value.ok_or_else(|| missing("lru_crawler_sleep value"))?;
            let n = atoi(v);
            if !(0..=1_000_000).contains(&n) {
                return Err(bad("LRU crawler sleep must be between 0 and 1 second"));
            }
            t.lru_crawler_sleep = n;
            knob
        }
        "lru_crawler_tocrawl" => {
            let v = value.ok_or_else(|| missing("lru_crawler_tocrawl value"))?;
            t.lru_crawler_tocrawl = safe_strtoul(v)
                .ok_or_else(|| bad("lru_crawler_tocrawl takes a numeric 32bit value"))?;
            knob
        }
        "lru_maintainer" => {
            t.lru_maintainer = true;
            t.lru_segmented = true;
            knob
        }
        "no_lru_maintainer" => {
            t.lru_maintainer = false;
            t.lru_segmented = false;
            knob
        }
        "hot_lru_pct" | "warm_lru_pct" => {
            let v = value.ok_or_else(|| missing(&format!("{name} argument")))?;
            let n = atoi(v);
            if !(1..80).contains(&n) {
                return Err(bad(format!("{name} must be > 1 and < 80")));
            }
            if name == "hot_lru_pct" {
                t.hot_lru_pct = n;
            } else {
                t.warm_lru_pct = n;
            }
            knob
        }
        "hot_max_factor" | "warm_max_factor" => {
            let v = value.ok_or_else(|| missing(&format!("{name} argument")))?;
            let f = atof(v);
            if f <= 0.0 {
                return Err(bad(format!("{name} must be > 0")));
            }
            if name == "hot_max_factor" {
                t.hot_max_factor = f;
            } else {
                t.warm_max_factor = f;
            }
            knob
        }
        "temporary_ttl" => {
            let v = value.ok_or_else(|| missing("temporary_ttl argument"))?;
            t.temp_lru = true;
            t.temporary_ttl = atoi(v) as u32;
            knob
        }
        "watcher_logbuf_size" | "worker_logbuf_size" => {
            let v = value.ok_or_else(|| missing(&format!("{name} argument")))?;
            let kb = safe_strtoul(v)
                .ok_or_else(|| bad(format!("could not parse argument to {name}")))?;
            let bytes = kb.wrapping_mul(1024);
            if name == "watcher_logbuf_size" {
                t.watcher_logbuf_size = bytes;
            } else {
                t.worker_logbuf_size = bytes;
            }
            knob
        }
        "read_buf_mem_limit" => {
            let v = value.ok_or_else(|| missing("read_buf_mem_limit argument"))?;
            let mb = safe_strtoul(v)
                .ok_or_else(|| bad("could not parse argument to read_buf_mem_limit"))?;
            t.read_buf_mem_limit = mb.wrapping_mul(1024 * 1024);
            knob
        }
        "track_sizes" => {
            t.track_sizes = true;
            Ok(SubOpt::Honoured)
        }
        "modern" | "inline_ascii_resp" | "no_inline_ascii_resp" | "relaxed_privileges" => knob,
        "no_modern" => {
            if !*chunk_changed {
                t.slab_chunk_max = SLAB_PAGE_SIZE as i32;
            }
            t.slab_reassign = false;
            t.slab_automove = 0;
            cfg.maxconns_fast = false;
            t.lru_segmented = false;
            t.hash_algorithm = "jenkins".into();
            t.lru_crawler = false;
            t.lru_maintainer = false;
            knob
        }
        "drop_privileges" => {
            t.drop_privileges = true;
            knob
        }
        "no_drop_privileges" => {
            t.drop_privileges = false;
            knob
        }
        "resp_obj_mem_limit" => {
            cfg.warnings
                .push("-o resp_obj_mem_limit is obsolete (memcached ignores it too)".into());
            knob
        }
        "sock_cookie_id" => {
            let v = value.ok_or_else(|| missing("sock_cookie_id argument"))?;
            t.sock_cookie_id = Some(
                safe_strtoul(v).ok_or_else(|| bad("could not parse argument to sock_cookie_id"))?,
            );
            knob
        }
        n if n.starts_with("ssl_") => Err(ConfigError::usage(
            EX_USAGE,
            format!(
                "-o {n}: twincache has no TLS support; terminate TLS in front of it \
                 (e.g. stunnel or haproxy)"
            ),
        )),
        n if n.starts_with("ext_") => Err(ConfigError::usage(
            EX_USAGE,
            format!(
                "-o {n}: twincache has no external (flash) storage; all items live in \
                 memory, sized by -m"
            ),
        )),
        n if n.starts_with("proxy_") => Err(ConfigError::usage(
            EX_USAGE,
            format!("-o {n}: twincache has no built-in proxy"),
        )),
        _ => Err(ConfigError::usage(
            1,
            format!("Illegal suboption \"{token}\""),
        )),
    }
}

/// memcached's slab_sizes list: '-'-separated sizes in bytes, increasing,
/// each between the smallest item (48 bytes) and `slab_chunk_max`. Empty
/// entries are skipped; a word that is not a number counts as size 0.
pub(super) fn check_slab_sizes(list: &str, chunk_max: i32) -> Result<(), ConfigError> {
    let mut last: u32 = 0;
    let mut count = 0;
    for part in list.split('-').filter(|p| !p.is_empty()) {
        let size = safe_strtoul(part).unwrap_or(0);
        if size < 48 || size as i64 > chunk_max as i64 {
            return Err(ConfigError::usage(
                EX_USAGE,
                format!("slab size {size} is out of valid range"),
            ));
        }
        if size <= last {
            return Err(ConfigError::usage(
                EX_USAGE,
                format!("slab size {size} cannot be lower than or equal to a previous class size"),
            ));
        }
        last = size;
        count += 1;
    }
    if count == 0 {
        return Err(ConfigError::usage(
            EX_USAGE,
            "-o slab_sizes: no sizes given",
        ));
    }
    Ok(())
}
