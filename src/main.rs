//! The twincache binary: flags, logging, run, exit codes.

use std::sync::Arc;

fn main() {
    let config = twincache::config::Config::default();
    let shared = Arc::new(twincache::exec::Shared::new(config));
    let listeners = match twincache::server::bind(&shared) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("failed to listen: {e}");
            std::process::exit(71);
        }
    };
    match twincache::server::serve(shared, listeners) {
        Ok(_) => std::process::exit(0),
        Err(e) => {
            eprintln!("server error: {e}");
            std::process::exit(71);
        }
    }
}
