//! Process set-up around the server, in memcached's order: the root check,
//! daemonizing, resource limits, memory locking, dropping privileges and the
//! pidfile. Every step reports failure as a [`Fatal`] carrying the message
//! and the exit code memcached uses.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
use nix::unistd::{Gid, Uid, User};

use crate::config::{Config, EX_NOUSER, EX_OSERR, EX_USAGE};

/// File descriptors kept free beside the `-c` client connections: listeners,
/// pollers, wakers, pidfile, log output, replication.
pub const RESERVED_FDS: u64 = 64;

/// A start-up step failed: print `message` on stderr and exit with `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal {
    pub message: String,
    pub code: i32,
}

impl Fatal {
    pub fn new(code: i32, message: impl Into<String>) -> Fatal {
        Fatal {
            message: message.into(),
            code,
        }
    }
}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fatal {}

/// The user to switch to after binding, when started as root.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
}

/// True when the real or effective user is root.
pub fn running_as_root() -> bool {
    Uid::current().is_root() || Uid::effective().is_root()
}

/// memcached's rule: root must name a `-u` user, and the user must exist.
/// Not root: `-u` is ignored (Ok(None)).
pub fn check_user(cfg: &Config) -> Result<Option<Identity>, Fatal> {
    if !running_as_root() {
        return Ok(None);
    }
    let name = match cfg.user.as_deref() {
        Some(n) if !n.is_empty() => n,
        _ => {
            return Err(Fatal::new(
                EX_USAGE,
                "can't run as root without the -u switch",
            ))
        }
    };
    match User::from_name(name) {
        Ok(Some(u)) => Ok(Some(Identity {
            name: name.to_string(),
            uid: u.uid,
            gid: u.gid,
        })),
        Ok(None) => Err(Fatal::new(
            EX_NOUSER,
            format!("can't find the user {name} to switch to"),
        )),
        Err(e) => Err(Fatal::new(
            EX_NOUSER,
            format!("can't find the user {name} to switch to: {e}"),
        )),
    }
}

/// Makes `path` absolute against the current directory, so that it still
/// names the same file after `-d` changes directory to `/`.
pub fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match std::env::current_dir() {
        Ok(dir) => dir.join(path),
        Err(_) => path.to_path_buf(),
    }
}

/// `-d`: fork, let the parent exit, start a new session; stdio goes to
/// /dev/null unless verbose, the working directory becomes `/` unless core
/// dumps are wanted (as memcached). Must run before any thread starts.
pub fn daemonize(cfg: &Config) -> Result<(), Fatal> {
    nix::unistd::daemon(cfg.enable_coredumps, cfg.verbosity > 0)
        .map_err(|e| Fatal::new(EX_OSERR, format!("failed to daemonize: {e}")))
}

/// The open-files limit `-c` needs.
pub fn nofile_needed(cfg: &Config) -> u64 {
    (cfg.max_connections as u64)
        .saturating_add(RESERVED_FDS)
        .saturating_add(4 * cfg.threads as u64)
}

/// Raises RLIMIT_NOFILE (soft, and hard if needed) to cover `-c`. Never
/// lowers a limit that is already large enough.
pub fn raise_nofile(cfg: &Config) -> Result<u64, Fatal> {
    let fail = || {
        Fatal::new(
            EX_OSERR,
            "failed to set rlimit for open files. Try starting as root or requesting \
             smaller maxconns value.",
        )
    };
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| {
        Fatal::new(
            EX_OSERR,
            format!("failed to getrlimit number of files: {e}"),
        )
    })?;
    let needed = nofile_needed(cfg);
    if soft != RLIM_INFINITY && soft < needed {
        let new_hard = if hard == RLIM_INFINITY {
            hard
        } else {
            hard.max(needed)
        };
        setrlimit(Resource::RLIMIT_NOFILE, needed, new_hard).map_err(|_| fail())?;
    }
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|_| fail())?;
    if soft != RLIM_INFINITY && soft < needed {
        return Err(fail());
    }
    Ok(soft)
}

/// `-r`: core files as large as allowed; an error when they stay disabled.
pub fn raise_core_limit() -> Result<(), Fatal> {
    let fail = || Fatal::new(EX_OSERR, "failed to ensure corefile creation");
    let (_, hard) = getrlimit(Resource::RLIMIT_CORE).map_err(|_| fail())?;
    if setrlimit(Resource::RLIMIT_CORE, RLIM_INFINITY, RLIM_INFINITY).is_err() {
        let _ = setrlimit(Resource::RLIMIT_CORE, hard, hard);
    }
    match getrlimit(Resource::RLIMIT_CORE) {
        Ok((soft, _)) if soft > 0 => Ok(()),
        _ => Err(fail()),
    }
}

/// `-k`: lock current and future memory. A failure is only a warning,
/// returned as text for the caller to log.
pub fn lock_memory() -> Result<(), String> {
    use nix::sys::mman::{mlockall, MlockAllFlags};
    mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE)
        .map_err(|e| format!("-k: mlockall() failed: {e}; continuing without locked memory"))
}

/// Switches to `who` for good: supplementary groups dropped, then group,
/// then user; then checks that root cannot be regained.
pub fn drop_privileges(who: &Identity) -> Result<(), Fatal> {
    use nix::errno::Errno;
    match nix::unistd::setgroups(&[]) {
        Ok(()) => {}
        // Already without the right to change groups: nothing to drop.
        Err(Errno::EPERM) => {
            tracing::warn!("failed to drop supplementary groups: EPERM");
        }
        Err(e) => {
            return Err(Fatal::new(
                EX_OSERR,
                format!("failed to drop supplementary groups: {e}"),
            ))
        }
    }
    let assume = |e: Errno| {
        Fatal::new(
            EX_OSERR,
            format!("failed to assume identity of user {}: {e}", who.name),
        )
    };
    nix::unistd::setgid(who.gid).map_err(assume)?;
    nix::unistd::setuid(who.uid).map_err(assume)?;
    if !who.uid.is_root() && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(Fatal::new(
            EX_OSERR,
            format!(
                "dropping privileges to user {} did not stick: root could be regained",
                who.name
            ),
        ));
    }
    Ok(())
}

/// Writes the process id to `path` atomically: `<path>.tmp`, then rename.
pub fn write_pidfile(path: &Path) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        writeln!(f, "{}", std::process::id())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes the pidfile at exit (memcached does so only when daemonized).
pub fn remove_pidfile(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        tracing::warn!("could not remove pid file {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pidfile_is_written_whole_and_tmp_is_gone() {
        let dir = std::env::temp_dir().join(format!("twincache-pid-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.pid");
        write_pidfile(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        assert!(!dir.join("t.pid.tmp").exists());
        remove_pidfile(&path);
        assert!(!path.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pidfile_in_missing_directory_fails_cleanly() {
        let path = Path::new("/nonexistent-twincache-dir/x.pid");
        assert!(write_pidfile(path).is_err());
    }

    #[test]
    fn nofile_covers_connections_and_reserve() {
        let cfg = Config {
            max_connections: 1000,
            threads: 4,
            ..Config::default()
        };
        assert_eq!(nofile_needed(&cfg), 1000 + RESERVED_FDS + 16);
    }

    /// Runs in a child process (this test binary re-executed), because
    /// dropping privileges cannot be undone.
    #[test]
    fn drop_privileges_sticks() {
        if !running_as_root() {
            eprintln!("SKIPPED: not running as root");
            return;
        }
        let nobody = match User::from_name("nobody") {
            Ok(Some(u)) => u,
            _ => {
                eprintln!("SKIPPED: no user nobody");
                return;
            }
        };
        if std::env::var_os("TWINCACHE_DROP_CHILD").is_some() {
            let who = Identity {
                name: "nobody".into(),
                uid: nobody.uid,
                gid: nobody.gid,
            };
            drop_privileges(&who).unwrap();
            assert_eq!(Uid::current(), nobody.uid);
            assert_eq!(Uid::effective(), nobody.uid);
            assert_eq!(Gid::current(), nobody.gid);
            assert_eq!(Gid::effective(), nobody.gid);
            assert!(nix::unistd::getgroups().unwrap().is_empty());
            assert!(nix::unistd::setuid(Uid::from_raw(0)).is_err());
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "process::tests::drop_privileges_sticks",
                "--test-threads=1",
            ])
            .env("TWINCACHE_DROP_CHILD", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "child: {text}");
        // The child really ran this test (and not zero tests).
        assert!(text.contains("1 passed"), "child: {text}");
    }

    #[test]
    fn check_user_rules() {
        let mut cfg = Config::default();
        if !running_as_root() {
            cfg.user = Some("no-such-user-twincache".into());
            assert!(check_user(&cfg).unwrap().is_none());
            return;
        }
        assert_eq!(check_user(&cfg).unwrap_err().code, EX_USAGE);
        cfg.user = Some(String::new());
        assert_eq!(check_user(&cfg).unwrap_err().code, EX_USAGE);
        cfg.user = Some("no-such-user-twincache".into());
        assert_eq!(check_user(&cfg).unwrap_err().code, EX_NOUSER);
        cfg.user = Some("root".into());
        let id = check_user(&cfg).unwrap().unwrap();
        assert!(id.uid.is_root());
    }

    #[test]
    fn absolute_keeps_absolute_and_anchors_relative() {
        assert_eq!(
            absolute(Path::new("/run/x.pid")),
            PathBuf::from("/run/x.pid")
        );
        let rel = absolute(Path::new("x.pid"));
        assert!(rel.is_absolute());
        assert!(rel.ends_with("x.pid"));
    }
}
