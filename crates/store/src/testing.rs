//! Throwaway databases for tests, ours and the server's (feature `testing`).
//!
//! ```ignore
//! let Some(db) = TestDatabase::new(Backend::Postgres).await else { return }; // skipped
//! let store = db.connect().await;
//! // … test …
//! db.cleanup().await;
//! ```
//!
//! SQLite: a file in a fresh temporary directory. PostgreSQL: a database named
//! `carehook_test_<uuid>` created on the server at `CAREHOOK_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and dropped by [`TestDatabase::cleanup`], or, if a
//! test panics before that, by `Drop` (best effort). If PostgreSQL cannot be reached the test
//! is skipped with a line on stderr, unless `CAREHOOK_REQUIRE_POSTGRES=1` (CI), where it fails.

/// Runs each named `async fn(&TestDatabase)` once per backend, as tests `name::sqlite` and
/// `name::postgres`, each on a fresh database cleaned up after.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                use $crate::testing::{Backend, TestDatabase};
                let Some(db) = TestDatabase::new(Backend::Sqlite).await else { return };
                super::$name(&db).await;
                db.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                use $crate::testing::{Backend, TestDatabase};
                let Some(db) = TestDatabase::new(Backend::Postgres).await else { return };
                super::$name(&db).await;
                db.cleanup().await;
            }
        }
    )*};
}

use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection, PgConnection};

use crate::Store;

pub const POSTGRES_URL_VAR: &str = "CAREHOOK_TEST_POSTGRES_URL";
pub const REQUIRE_POSTGRES_VAR: &str = "CAREHOOK_REQUIRE_POSTGRES";
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub const ALL: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];
}

/// A fresh, empty database (no schema until a store connects) that goes away after the test.
#[derive(Debug)]
pub struct TestDatabase {
    backend: Backend,
    url: String,
    /// SQLite: keeps the directory alive.
    dir: Option<tempfile::TempDir>,
    /// PostgreSQL: (server URL to connect to for the drop, database name); `None` once dropped.
    pg: Option<(String, String)>,
}

impl TestDatabase {
    /// `None` means "skip this test" (PostgreSQL unreachable and not required); the reason has
    /// been printed.
    pub async fn new(backend: Backend) -> Option<TestDatabase> {
        match backend {
            Backend::Sqlite => Some(TestDatabase::sqlite()),
            Backend::Postgres => TestDatabase::postgres().await,
        }
    }

    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::Builder::new()
            .prefix("carehook-test-")
            .tempdir()
            .expect("cannot make a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("carehook.db").display());
        TestDatabase {
            backend: Backend::Sqlite,
            url,
            dir: Some(dir),
            pg: None,
        }
    }

    pub async fn postgres() -> Option<TestDatabase> {
        let base = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into());
        let required = std::env::var(REQUIRE_POSTGRES_VAR).is_ok_and(|v| v == "1");
        let mut admin = match tokio::time::timeout(
            Duration::from_secs(5),
            PgConnection::connect(&base),
        )
        .await
        {
            Ok(Ok(c)) => c,
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out after 5 s".to_owned(),
                };
                if required {
                    panic!(
                        "PostgreSQL at {base} is required ({REQUIRE_POSTGRES_VAR}=1) but cannot be reached: {why}"
                    );
                }
                eprintln!(
                    "SKIPPED (PostgreSQL at {base} unreachable: {why}; set {POSTGRES_URL_VAR}, or {REQUIRE_POSTGRES_VAR}=1 to fail)"
                );
                return None;
            }
        };
        let name = format!("carehook_test_{}", uuid::Uuid::now_v7().simple());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name} at {base}: {e}"));
        let _ = admin.close().await;
        Some(TestDatabase {
            backend: Backend::Postgres,
            url: with_database(&base, &name),
            dir: None,
            pg: Some((base, name)),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL for [`crate::connect`] (or for the server's settings).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A connected, migrated store on this database; call again for a second connection.
    pub async fn connect(&self) -> Arc<dyn Store> {
        crate::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to test database {}: {e}", self.url))
    }

    /// Drops the database (PostgreSQL, even with connections still open) or the directory.
    pub async fn cleanup(mut self) {
        if let Some((base, name)) = self.pg.take()
            && let Err(e) = drop_database(&base, &name).await
        {
            eprintln!("warning: could not drop test database {name}: {e}");
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((base, name)) = self.pg.take() else {
            return;
        };
        // A test that panicked never reached `cleanup`. Drop cannot await, and may run inside
        // a runtime, so the drop gets a thread and a small runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt
                && let Err(e) = rt.block_on(drop_database(&base, &name))
            {
                eprintln!("warning: could not drop test database {name}: {e}");
            }
        })
        .join();
    }
}

async fn drop_database(base: &str, name: &str) -> Result<(), sqlx::Error> {
    let mut admin = PgConnection::connect(base).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    let _ = admin.close().await;
    Ok(())
}

/// `base` with its database (the URL path) replaced by `name`; the query string is kept.
pub fn with_database(base: &str, name: &str) -> String {
    let (main, query) = match base.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (base, None),
    };
    let authority_start = main.find("://").map_or(0, |i| i + 3);
    let root = match main[authority_start..].find('/') {
        Some(i) => &main[..authority_start + i],
        None => main,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn with_database_replaces_only_the_path() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "x"),
            "postgresql://u:p@h/x?sslmode=disable"
        );
    }
}
