fn main() -> std::process::ExitCode {
    cm_migrate::tools::run(std::env::args_os())
}
