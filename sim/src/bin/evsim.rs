//! `evsim`: run, explore and shrink simulated evloop programs (see `evloop_sim::explore`).

fn main() -> std::process::ExitCode {
    evloop_sim::explore::cli_main(Vec::new())
}
