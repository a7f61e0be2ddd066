//! Guards the layering rule of DESIGN.md:
//!
//! ```text
//! main.rs -> server/ -> replication/ -> exec/ -> protocol/, storage/ ; config, clock, stats, net are leaves
//! ```
//!
//! - `replication/` reaches the store only through `exec` and never uses
//!   `server/`; no file of `exec/` uses `server/` or `replication/`;
//! - `protocol/` and `storage/` never mention mio, sockets, the server, exec
//!   or replication;
//! - `storage/` knows nothing of the protocol;
//! - `protocol/` has no store and no clock;
//! - `unsafe` appears only under `storage/`;
//! - reply text (`STORED`, `END\r\n`, `VALUE `, ...) is produced only by
//!   `src/protocol/encode.rs` (error lines may also be spelled out in
//!   `src/protocol/error.rs`, whose `wire_text` the encoder writes).
//!
//! The checks read the code with comments removed (a doc comment may say
//! "no sockets here") and ignore a trailing `#[cfg(test)] mod` (unit tests
//! may compare against wire text). Paths are read through `use` groups and
//! `super::super::`, so `use crate::{exec, server}` is caught too.

use std::path::{Path, PathBuf};

/// A source file split into code (comments and literals blanked) and its
/// string literals (raw text between the quotes, escapes not processed).
struct Lexed {
    code: String,
    literals: Vec<Literal>,
}

struct Literal {
    line: usize,
    /// Where the literal stood in `code` (its blanked `""` starts here).
    at: usize,
    text: String,
}

/// A small Rust lexer: enough to tell comments, strings, byte strings, raw
/// strings, char literals and lifetimes apart.
fn lex(src: &str) -> Lexed {
    let b = src.as_bytes();
    let mut code = String::with_capacity(src.len());
    let mut literals = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        let c = b[i];
        let prev_ident = i > 0 && is_ident(b[i - 1]);
        if c == b'\n' {
            line += 1;
            code.push('\n');
            i += 1;
        } else if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if b[i] == b'\n' {
                        line += 1;
                        code.push('\n');
                    }
                    i += 1;
                }
            }
            code.push(' ');
        } else if !prev_ident
            && (b[i..].starts_with(b"r#")
                || b[i..].starts_with(b"r\"")
                || b[i..].starts_with(b"br"))
            && {
                let start = if c == b'b' { i + 2 } else { i + 1 };
                let mut j = start;
                while j < b.len() && b[j] == b'#' {
                    j += 1;
                }
                j < b.len() && b[j] == b'"'
            }
        {
            // raw string: r"..", r#".."#, br#".."#
            let start = if c == b'b' { i + 2 } else { i + 1 };
            let mut j = start;
            while b[j] == b'#' {
                j += 1;
            }
            let hashes = j - start;
            let body_start = j + 1;
            let mut close = String::from("\"");
            close.push_str(&"#".repeat(hashes));
            let body_end = src[body_start..]
                .find(&close)
                .map(|p| p + body_start)
                .unwrap_or(b.len());
            let body = &src[body_start..body_end];
            literals.push(Literal {
                line,
                at: code.len(),
                text: body.to_string(),
            });
            line += body.matches('\n').count();
            code.push_str("\"\"");
            code.push_str(&"\n".repeat(body.matches('\n').count()));
            i = (body_end + close.len()).min(b.len());
        } else if c == b'"' || (!prev_ident && c == b'b' && b.get(i + 1) == Some(&b'"')) {
            let mut j = if c == b'b' { i + 2 } else { i + 1 };
            let body_start = j;
            while j < b.len() && b[j] != b'"' {
                if b[j] == b'\\' {
                    j += 1;
                }
                j += 1;
            }
            let body_end = j.min(b.len());
            let body = &src[body_start..body_end];
            literals.push(Literal {
                line,
                at: code.len(),
                text: body.to_string(),
            });
            line += body.matches('\n').count();
            code.push_str("\"\"");
            code.push_str(&"\n".repeat(body.matches('\n').count()));
            i = body_end + 1;
        } else if c == b'\'' {
            // char literal ('x', '\n', '\u{..}', b'x') or lifetime ('a)
            let is_char = match b.get(i + 1) {
                Some(b'\\') => true,
                Some(_) => {
                    // one (possibly multi-byte) char then a quote
                    let ch_len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                    b.get(i + 1 + ch_len) == Some(&b'\'')
                }
                None => false,
            };
            if is_char {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'\'' {
                    if b[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                code.push_str("' '");
                i = j + 1;
            } else {
                code.push('\'');
                i += 1;
            }
        } else {
            let ch = src[i..].chars().next().unwrap_or(' ');
            code.push(ch);
            i += ch.len_utf8();
        }
    }
    Lexed { code, literals }
}

/// Drops a trailing unit-test module (`#[cfg(test)]` followed by `mod`).
fn without_test_module(src: &str) -> &str {
    let mut from = 0;
    while let Some(p) = src[from..].find("#[cfg(test)]") {
        let at = from + p;
        let rest = src[at + "#[cfg(test)]".len()..].trim_start();
        if rest.starts_with("mod ") || rest.starts_with("pub mod ") {
            return &src[..at];
        }
        from = at + 1;
    }
    src
}

fn identifiers(code: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut line = 1;
    let b = code.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\n' {
            line += 1;
            i += 1;
        } else if b[i].is_ascii_alphabetic() || b[i] == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((line, &code[s..i]));
        } else {
            i += 1;
        }
    }
    out
}

/// Module names reached through `crate::`, `super::` or `::` paths,
/// including every name inside `{...}` groups.
fn path_segments(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(p) = code[from..].find(start) {
            let at = from + p;
            from = at + start.len();
            if code[..at].ends_with("super::") {
                // the tail of a `super::super::` chain: already read
                continue;
            }
            if at > 0 {
                let prev = code.as_bytes()[at - 1];
                if prev.is_ascii_alphanumeric() || prev == b'_' {
                    continue;
                }
            }
            let line = code[..at].matches('\n').count() + 1;
            // the path (with groups) continues over idents, ::, braces,
            // commas, `*`, `as` and whitespace
            let mut depth = 0i32;
            let mut end = from;
            for (k, ch) in code[from..].char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth < 0 {
                            end = from + k;
                            break;
                        }
                    }
                    c if c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '*' => {}
                    ',' | ' ' | '\n' | '\t' if depth > 0 => {}
                    _ => {
                        end = from + k;
                        break;
                    }
                }
                end = from + k + ch.len_utf8();
            }
            for (_, id) in identifiers(&code[from..end]) {
                out.push((line, id.to_string()));
            }
        }
    }
    out
}

fn rs_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rs_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The crate's src/ (`TWINCACHE_LAYERING_SRC` points the check at another
/// tree, e.g. a branch being merged).
fn src_dir() -> PathBuf {
    match std::env::var_os("TWINCACHE_LAYERING_SRC") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src"),
    }
}

/// Violations of the dependency rules in one file (`rel` is its path
/// under src/, with `/` separators).
fn check_file(rel: &str, src: &str) -> Vec<String> {
    let mut v = Vec::new();
    let lexed = lex(without_test_module(src));
    let code_lower = lexed.code.to_ascii_lowercase();
    let in_protocol = rel.starts_with("protocol/");
    let in_storage = rel.starts_with("storage/");
    let line_of = |byte: usize| lexed.code[..byte].matches('\n').count() + 1;

    if in_protocol || in_storage {
        for (line, id) in identifiers(&lexed.code) {
            if id == "mio" {
                v.push(format!("src/{rel}:{line}: mentions mio"));
            }
        }
        for word in ["socket", "replication"] {
            if let Some(p) = code_lower.find(word) {
                v.push(format!("src/{rel}:{}: mentions {word}", line_of(p)));
            }
        }
        for (line, seg) in path_segments(&lexed.code) {
            if ["server", "exec", "replication"].contains(&seg.as_str()) {
                v.push(format!("src/{rel}:{line}: uses crate::{seg}"));
            }
            if in_storage && seg == "protocol" {
                v.push(format!("src/{rel}:{line}: storage uses the protocol"));
            }
            if in_protocol && seg == "storage" {
                v.push(format!("src/{rel}:{line}: protocol uses the store"));
            }
        }
    }
    // Replication sits above exec: it reaches the store only through exec
    // and knows nothing of the client server. exec knows neither (every
    // file of src/exec/; a single src/exec.rs, as older trees have, too).
    let in_exec = rel == "exec.rs" || rel.starts_with("exec/");
    if rel.starts_with("replication/") || in_exec {
        let forbidden: &[&str] = if in_exec {
            &["server", "replication"]
        } else {
            &["server", "storage"]
        };
        for (line, seg) in path_segments(&lexed.code) {
            if forbidden.contains(&seg.as_str()) {
                v.push(format!("src/{rel}:{line}: uses crate::{seg}"));
            }
        }
    }
    if in_protocol {
        if let Some(p) = code_lower.find("clock") {
            v.push(format!(
                "src/{rel}:{}: protocol mentions a clock",
                line_of(p)
            ));
        }
        for (line, id) in identifiers(&lexed.code) {
            if id == "SystemTime" || id == "Instant" {
                v.push(format!("src/{rel}:{line}: protocol reads time ({id})"));
            }
        }
    }
    if !in_storage {
        for (line, id) in identifiers(&lexed.code) {
            if id == "unsafe" {
                v.push(format!("src/{rel}:{line}: unsafe outside src/storage/"));
            }
        }
    }
    // Reply text: success tokens only in encode.rs; error lines in
    // encode.rs or error.rs.
    const REPLY_TOKENS: &[&str] = &[
        "STORED",
        "NOT_STORED",
        "EXISTS",
        "NOT_FOUND",
        "DELETED",
        "TOUCHED",
        "END\\r\\n",
        "VALUE ",
        "STAT ",
        "VERSION ",
        "RESET\\r\\n",
        "OK\\r\\n",
        "ERROR\\r\\n",
    ];
    const ERROR_TOKENS: &[&str] = &["CLIENT_ERROR", "SERVER_ERROR"];
    let may_encode = rel == "protocol/encode.rs";
    let may_spell_errors = may_encode || rel == "protocol/error.rs";
    for Literal {
        line,
        at,
        text: lit,
    } in &lexed.literals
    {
        // Reading reply text (e.g. `-vv` logging what was sent) is not
        // producing it.
        let before = lexed.code[..*at].trim_end();
        let compared = ["starts_with(", "strip_prefix(", "==", "!=", "ends_with("]
            .iter()
            .any(|m| before.ends_with(m));
        let bad = !compared
            && ((!may_encode && REPLY_TOKENS.iter().any(|t| lit.starts_with(t)))
                || (!may_spell_errors && ERROR_TOKENS.iter().any(|t| lit.starts_with(t))));
        if bad {
            v.push(format!(
                "src/{rel}:{line}: reply text {lit:?} outside src/protocol/encode.rs"
            ));
        }
    }
    v
}

#[test]
fn layering_rules_hold() {
    let root = src_dir();
    let files = rs_files(&root);
    assert!(
        files.iter().any(|p| p.ends_with("protocol/encode.rs"))
            && files.iter().any(|p| p.starts_with(root.join("storage"))),
        "expected src/protocol/encode.rs and src/storage/ under {}",
        root.display()
    );
    let mut violations = Vec::new();
    for path in &files {
        let rel = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .to_string_lossy()
            .replace('\\', "/");
        let src = std::fs::read_to_string(path).unwrap_or_default();
        violations.extend(check_file(&rel, &src));
    }
    assert!(
        violations.is_empty(),
        "layering violations:\n{}",
        violations.join("\n")
    );
}

// The checker itself must catch what it is meant to catch.

#[test]
fn checker_catches_forbidden_paths() {
    let v = check_file("protocol/parse.rs", "use crate::{exec, storage::Store};\n");
    assert_eq!(v.len(), 2, "{v:?}");
    let v = check_file(
        "storage/mod.rs",
        "fn f() { super::super::server::run(); }\n",
    );
    assert_eq!(v.len(), 1, "{v:?}");
    let v = check_file("storage/mod.rs", "use crate::protocol::Command;\n");
    assert_eq!(v.len(), 1, "{v:?}");
    let v = check_file("protocol/mod.rs", "use mio::net::TcpStream;\n");
    assert!(v.iter().any(|s| s.contains("mio")), "{v:?}");
    let v = check_file("replication/node.rs", "use crate::storage::Store;\n");
    assert!(v.iter().any(|s| s.contains("storage")), "{v:?}");
    let v = check_file("exec.rs", "fn f() { crate::replication::start(); }\n");
    assert!(v.iter().any(|s| s.contains("replication")), "{v:?}");
    // Every file of exec/, its dispatch and its command modules alike.
    for file in ["exec/mod.rs", "exec/meta.rs", "exec/peer.rs"] {
        let v = check_file(file, "use crate::server::ServerInfo;\n");
        assert_eq!(v.len(), 1, "{file}: {v:?}");
        let v = check_file(file, "use crate::{protocol, replication::node};\n");
        assert_eq!(v.len(), 1, "{file}: {v:?}");
        let v = check_file(file, "fn f() { super::super::server::run(); }\n");
        assert_eq!(v.len(), 1, "{file}: {v:?}");
        // Its own modules and the layers below are fine.
        let v = check_file(
            file,
            "use super::stream::{stream, StreamKind};\nuse crate::storage::Store;\n",
        );
        assert!(v.is_empty(), "{file}: {v:?}");
    }
    let v = check_file("storage/mod.rs", "fn f(s: socket2::Socket) {}\n");
    assert!(v.iter().any(|s| s.contains("socket")), "{v:?}");
    let v = check_file("protocol/parse.rs", "use crate::clock::Clock;\n");
    assert!(v.iter().any(|s| s.contains("clock")), "{v:?}");
    let v = check_file("storage/repl.rs", "struct ReplicationLog;\n");
    assert!(v.iter().any(|s| s.contains("replication")), "{v:?}");
}

#[test]
fn checker_ignores_comments_and_tests() {
    let src = "//! No sockets, no clock, no mio, no crate::server here.\n\
               /* replication /* nested */ too */\n\
               fn f() -> u8 { b'\"' }\n\
               fn g<'a>(x: &'a str) -> &'a str { x }\n\
               #[cfg(test)]\nmod tests { const X: &[u8] = b\"STORED\\r\\n\"; fn u() { unsafe {} } }\n";
    assert_eq!(check_file("protocol/parse.rs", src), Vec::<String>::new());
}

#[test]
fn checker_catches_unsafe_and_wire_text() {
    let v = check_file("exec.rs", "fn f() { unsafe { g() } }\n");
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(check_file("storage/slab.rs", "fn f() { unsafe { g() } }\n").is_empty());
    let v = check_file(
        "exec.rs",
        "fn f(o: &mut Vec<u8>) { o.extend(b\"STORED\\r\\n\"); }\n",
    );
    assert_eq!(v.len(), 1, "{v:?}");
    let v = check_file("server/mod.rs", "const E: &str = \"END\\r\\n\";\n");
    assert_eq!(v.len(), 1, "{v:?}");
    let v = check_file(
        "stats.rs",
        "fn f() { format!(\"STAT {} {}\\r\\n\", a, b); }\n",
    );
    assert_eq!(v.len(), 1, "{v:?}");
    let v = check_file(
        "exec.rs",
        "fn f() { line(o, r#\"CLIENT_ERROR usage\"#); }\n",
    );
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(check_file(
        "protocol/encode.rs",
        "const S: &[u8] = b\"STORED\\r\\n\";\n"
    )
    .is_empty());
    assert!(check_file(
        "protocol/error.rs",
        "const S: &str = \"CLIENT_ERROR bad data chunk\";\n"
    )
    .is_empty());
    // Reading reply text is not producing it; a command-line error is not
    // reply text.
    assert!(check_file(
        "server/connection.rs",
        "fn f(l: &[u8]) -> bool { l.strip_prefix(b\"VALUE \").is_some() || l.starts_with(b\"END\\r\\n\") }\n"
    )
    .is_empty());
    assert!(check_file(
        "config.rs",
        "fn f() { eprintln!(\"ERROR: Invalid port number\"); }\n"
    )
    .is_empty());
    // Ordinary strings that merely contain a token are fine.
    assert!(check_file("config.rs", "const H: &str = \"the END of options\";\n").is_empty());
}
