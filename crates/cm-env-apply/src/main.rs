fn main() -> std::process::ExitCode {
    cm_env_apply::run(std::env::args_os())
}
