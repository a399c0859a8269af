//! template (in progress).
