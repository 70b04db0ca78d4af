fn main() -> std::process::ExitCode {
    cm_ini_to_env::run(std::env::args_os())
}
