//! Logging: one subscriber for the whole process.
//!
//! `IDGRAPH_LOG` (or `RUST_LOG`) sets the filter, `info` by default; `IDGRAPH_LOG_FORMAT=json`
//! switches to JSON lines for log collectors. Logs go to standard error so that standard output
//! stays for what a command prints on purpose (URLs, keys, summaries, the schema).

use std::io::IsTerminal;
use tracing_subscriber::{fmt, EnvFilter};

pub fn init() {
    let filter = std::env::var("IDGRAPH_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info,sqlx=warn,hyper=warn,reqwest=warn".to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("IDGRAPH_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    // Colours only on a terminal, and not when `NO_COLOR` is set (https://no-color.org): a log
    // file or a collector reading a pipe gets plain text.
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false);
    // A second initialisation (tests) is harmless: the first subscriber stays.
    if json {
        let _ = builder.json().flatten_event(true).try_init();
    } else {
        let _ = builder.compact().try_init();
    }
}
