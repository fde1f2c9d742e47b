//! The `npe` command-line program.
fn main() -> std::process::ExitCode {
    npe::cli::main_with(npe::Extensions::default())
}
