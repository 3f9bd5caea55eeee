//! `airlockd`: the airlock registry server.

fn main() -> std::process::ExitCode {
    airlock_server::cli::main()
}
