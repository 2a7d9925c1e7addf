//! IFEval: placeholder, being written.
