#[test]
fn binaries_build_and_are_found() {
    for b in ["cm-ini-to-env", "cm-copy-data", "cm-verify", "cm-migrate"] {
        assert!(cm_tests::bin(b).exists());
    }
}
