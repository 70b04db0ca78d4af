//! ini (to be written).
