//! The store's one error type. The server maps it to HTTP in one place: `NotFound` → 404,
//! `Conflict` → 409, `Invalid` → 400, `Rejected` → 422 (naming the field), everything else → 500 (logged, never shown).

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique constraint said no (a duplicate id, token hash, …).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Bad input the caller can fix (an unparsable cursor, an unknown database URL scheme).
    #[error("invalid: {0}")]
    Invalid(String),
    /// A clinic record the caller must fix: the field at fault and why (a reference to a
    /// record that does not exist, a doctor from another clinic…). Nothing was written.
    #[error("{0}")]
    Rejected(#[from] carehook_core::clinic::FieldError),
    /// A stored value the store cannot read back (bad JSON, bad UUID): a bug or a hand edit.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl StoreError {
    /// A page cursor the store did not make (or no longer can read): the
    /// caller's `cursor` parameter, named as such.
    pub fn bad_cursor(cursor: &str) -> StoreError {
        StoreError::Rejected(carehook_core::clinic::FieldError::new(
            "cursor",
            format!("bad cursor {cursor:?}: pass the next_cursor of the previous page"),
        ))
    }

    /// Whether this is [`StoreError::bad_cursor`].
    pub fn is_bad_cursor(&self) -> bool {
        matches!(self, StoreError::Rejected(f) if f.field == "cursor")
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let Some(db) = e.as_database_error()
            && db.is_unique_violation()
        {
            return StoreError::Conflict(db.message().to_owned());
        }
        if let Some(db) = e.as_database_error()
            && db.is_foreign_key_violation()
        {
            return StoreError::Conflict(format!(
                "other records still refer to this one ({})",
                db.message()
            ));
        }
        StoreError::Database(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
