//! The trainer: being written.
