//! signing (in progress).
