//! carehook storage.
