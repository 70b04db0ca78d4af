fn main() {
    eprintln!("cm-copy-data: not built yet");
    std::process::exit(2);
}
