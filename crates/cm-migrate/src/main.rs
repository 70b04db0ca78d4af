fn main() -> std::process::ExitCode {
    cm_migrate::run(std::env::args_os())
}
