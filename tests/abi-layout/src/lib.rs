//! ABI layout checks (tests only).
