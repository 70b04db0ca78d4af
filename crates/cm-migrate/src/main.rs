fn main() {
    eprintln!("cm-migrate: not built yet");
    std::process::exit(2);
}
