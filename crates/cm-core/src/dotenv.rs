//! dotenv (to be written).
