//! conditions (in progress).
