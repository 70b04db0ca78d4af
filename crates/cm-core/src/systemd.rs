//! systemd (to be written).
