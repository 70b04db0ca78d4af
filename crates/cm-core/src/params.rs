//! params (to be written).
