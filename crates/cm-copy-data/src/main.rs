fn main() -> std::process::ExitCode {
    cm_copy_data::run(std::env::args_os())
}
