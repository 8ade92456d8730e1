//! The `fleet-ceremony` command.

fn main() -> std::process::ExitCode {
    fleet_ceremony::cli::main()
}
