fn main() {
    eprintln!("cm-ini-to-env: not built yet");
    std::process::exit(2);
}
