//! The clap command that mirrors memcached's getopt_long option table.

use super::*;

// ---------------------------------------------------------------------------
// clap command
// ---------------------------------------------------------------------------

/// A flag that takes a value (hyphen-leading values accepted, as getopt
/// does: `-c -1` gives -c the value "-1").
pub(super) fn valued(id: &'static str, short: char, long: Option<&'static str>) -> Arg {
    let a = Arg::new(id)
        .short(short)
        .action(ArgAction::Set)
        .num_args(1)
        .allow_hyphen_values(true);
    match long {
        Some(l) => a.long(l),
        None => a,
    }
}

/// A long-only option that takes a value.
pub(super) fn long_valued(id: &'static str) -> Arg {
    Arg::new(id)
        .long(id)
        .action(ArgAction::Set)
        .num_args(1)
        .allow_hyphen_values(true)
}

pub(super) fn switch(id: &'static str, short: char, long: Option<&'static str>) -> Arg {
    let a = Arg::new(id).short(short).action(ArgAction::SetTrue);
    match long {
        Some(l) => a.long(l),
        None => a,
    }
}

pub(super) fn command() -> Command {
    Command::new("twincache")
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .disable_help_subcommand(true)
        .args_override_self(true)
        .infer_long_args(true)
        .dont_delimit_trailing_values(true)
        .arg(valued("port", 'p', Some("port")))
        .arg(valued("udp-port", 'U', Some("udp-port")))
        .arg(valued("unix-socket", 's', Some("unix-socket")))
        .arg(valued("unix-mask", 'a', Some("unix-mask")))
        .arg(switch("enable-shutdown", 'A', Some("enable-shutdown")))
        .arg(valued("listen", 'l', Some("listen")).action(ArgAction::Append))
        .arg(switch("daemon", 'd', Some("daemon")))
        .arg(switch("enable-coredumps", 'r', Some("enable-coredumps")))
        .arg(valued("user", 'u', Some("user")))
        .arg(valued("memory-limit", 'm', Some("memory-limit")))
        .arg(switch("disable-evictions", 'M', Some("disable-evictions")))
        .arg(valued("conn-limit", 'c', Some("conn-limit")))
        .arg(switch("lock-memory", 'k', Some("lock-memory")))
        .arg(Arg::new("v").short('v').action(ArgAction::Count))
        .arg(
            Arg::new("verbose")
                .long("verbose")
                .action(ArgAction::Append)
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value(""),
        )
        .arg(switch("help", 'h', Some("help")))
        .arg(switch("license", 'i', Some("license")))
        .arg(switch("version", 'V', Some("version")))
        .arg(valued("pidfile", 'P', Some("pidfile")))
        .arg(valued(
            "slab-growth-factor",
            'f',
            Some("slab-growth-factor"),
        ))
        .arg(valued("slab-min-size", 'n', Some("slab-min-size")))
        .arg(switch("enable-largepages", 'L', Some("enable-largepages")))
        .arg(valued("delimiter", 'D', None))
        .arg(valued("threads", 't', Some("threads")))
        .arg(valued(
            "max-reqs-per-event",
            'R',
            Some("max-reqs-per-event"),
        ))
        .arg(switch("disable-cas", 'C', Some("disable-cas")))
        .arg(valued("listen-backlog", 'b', Some("listen-backlog")))
        .arg(valued("protocol", 'B', Some("protocol")))
        .arg(valued("max-item-size", 'I', Some("max-item-size")))
        .arg(switch("enable-sasl", 'S', Some("enable-sasl")))
        .arg(switch("disable-flush-all", 'F', Some("disable-flush-all")))
        // memcached's -X; the short letter is the replication port here.
        .arg(
            Arg::new("disable-dumping")
                .long("disable-dumping")
                .action(ArgAction::SetTrue),
        )
        .arg(switch("disable-watch", 'W', Some("disable-watch")))
        // Replication (repcached's letters, then long options).
        .arg(valued("repl-peer", 'x', None))
        .arg(valued("repl-port", 'X', None))
        .arg(valued("repl-outbox-items", 'q', None))
        .arg(long_valued("repl-outbox-bytes"))
        .arg(long_valued("repl-secret-file"))
        .arg(long_valued("repl-sync-timeout"))
        .arg(long_valued("node-id"))
        .arg(long_valued("repl-heartbeat-ms"))
        .arg(long_valued("repl-timeout-ms"))
        .arg(long_valued("repl-backoff-max-ms"))
        .arg(long_valued("repl-drain-timeout"))
        .arg(long_valued("repl-tombstone-ttl"))
        .arg(long_valued("repl-tombstone-bytes"))
        .arg(valued("auth-file", 'Y', Some("auth-file")))
        .arg(valued("memory-file", 'e', Some("memory-file")))
        .arg(switch("enable-ssl", 'Z', Some("enable-ssl")))
        .arg(valued("napi-ids", 'N', Some("napi-ids")).alias("napi_ids"))
        .arg(valued("extended", 'o', Some("extended")).action(ArgAction::Append))
        .arg(
            Arg::new("stray")
                .num_args(1..)
                .action(ArgAction::Append)
                .value_parser(clap::value_parser!(OsString)),
        )
}

/// Turns a clap parse error into memcached's wording and exit code 1.
/// `last` is the last command-line word (where a missing value is missing).
pub(super) fn clap_error(e: clap::Error, last: Option<&str>) -> ConfigError {
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(v)) => v.join(" "),
        _ => String::new(),
    };
    let flag = arg.split_whitespace().next().unwrap_or("").to_string();
    let mut message = match e.kind() {
        ErrorKind::UnknownArgument => {
            if flag.starts_with("--") {
                format!("twincache: unrecognized option '{flag}'")
            } else {
                let letter = flag.trim_start_matches('-');
                format!("twincache: invalid option -- '{letter}'")
            }
        }
        ErrorKind::InvalidValue | ErrorKind::WrongNumberOfValues | ErrorKind::NoEquals => {
            match last {
                // Typed as a short option (possibly bundled: -vp).
                Some(w) if w.starts_with('-') && !w.starts_with("--") => {
                    let letter = w.chars().last().unwrap_or('?');
                    format!("twincache: option requires an argument -- '{letter}'")
                }
                Some(w) if w.starts_with("--") => {
                    format!("twincache: option '{w}' requires an argument")
                }
                _ => format!("twincache: option '{flag}' requires an argument"),
            }
        }
        ErrorKind::TooManyValues => {
            format!("twincache: option '{flag}' doesn't allow an argument")
        }
        _ => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("").to_string();
            format!("twincache: {}", first.trim_start_matches("error: "))
        }
    };
    message.push_str("\nTry 'twincache -h' for the list of options.");
    ConfigError::usage(1, message)
}
