fn main() -> std::process::ExitCode {
    cm_verify::run(std::env::args_os())
}
