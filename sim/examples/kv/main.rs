//! A custom `evsim` for the key-value server: the built-in targets plus `kv`.
//!
//! ```sh
//! cargo run --release -p evloop-sim --example kv -- explore kv --seeds 0..300 --faults chaos
//! ```

mod harness;
mod server;

fn main() -> std::process::ExitCode {
    evloop_sim::explore::cli_main(vec![Box::new(harness::Kv)])
}
