//! Helpers for end-to-end tests (filled by the mail-flow work).
