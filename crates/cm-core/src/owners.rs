//! owners (to be written).
