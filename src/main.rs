//! The `plcc` command-line tool.

fn main() -> std::process::ExitCode {
    plcc::cli::main_with(plcc::pass_registry())
}
