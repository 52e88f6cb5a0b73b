//! The `procure` binary's library: the in-process system wiring, the Temporal dev-server
//! launcher, the demo driver, the benchmark and the settings tree (`settings`). `main.rs` only
//! parses the command line.

pub mod bench;
pub mod chaos;
pub mod components;
pub mod demo;
pub mod devserver;
pub mod example;
pub mod example_monitor;
pub mod metrics_port;
pub mod settings;
pub mod system;
pub mod telemetry;
