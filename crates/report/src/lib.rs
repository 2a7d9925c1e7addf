//! The report: placeholder, being written.
