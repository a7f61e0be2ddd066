//! The twincache binary: flags, logging, run, exit codes.

use std::sync::Arc;

fn main() {
    let config = twincache::config::Config::default();
    let shared = Arc::new(twincache::exec::Shared::new(config));
    match twincache::server::run(shared) {
        Ok(_) => std::process::exit(0),
        Err(e) => {
            eprintln!("failed to start: {e}");
            std::process::exit(71);
        }
    }
}
