//! `airlock`: the airlock client CLI.
fn main() -> std::process::ExitCode {
    airlock_client::cli::main()
}
