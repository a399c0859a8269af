//! History for benchmarks (`carehook bench --preload-rows`): old events, each with one
//! delivered delivery and its attempt, written straight into the tables in large set-based
//! inserts, so a run can measure carehook on a database that has been in use for a while.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::error::{Result, StoreError};

/// Rows per transaction.
const CHUNK: u64 = 100_000;

/// Ids `…-7000-<variant>-<n, 12 digits>`: valid UUIDs (v7 layout), one series per table.
const SQLITE: [&str; 3] = [
    "WITH RECURSIVE n(x) AS (SELECT $1 UNION ALL SELECT x + 1 FROM n WHERE x < $2) \
     INSERT INTO events (id, event_type, vars, idempotency_key, created_at) \
     SELECT '00000000-0000-7000-8000-' || printf('%012d', x), 'kc_appointment_book', \
     '{\"patient_name\":\"Preloaded\",\"clinic_name\":\"Riverside\"}', NULL, $3 + x FROM n",
    "WITH RECURSIVE n(x) AS (SELECT $1 UNION ALL SELECT x + 1 FROM n WHERE x < $2) \
     INSERT INTO deliveries (id, event_id, webhook_id, status, attempts, next_attempt_at, \
     created_at, updated_at, last_status, is_test) \
     SELECT '00000000-0000-7000-9000-' || printf('%012d', x), \
     '00000000-0000-7000-8000-' || printf('%012d', x), $4, 'succeeded', 1, $3 + x, $3 + x, \
     $3 + x + 1, 200, 0 FROM n",
    "WITH RECURSIVE n(x) AS (SELECT $1 UNION ALL SELECT x + 1 FROM n WHERE x < $2) \
     INSERT INTO attempts (id, delivery_id, attempt_no, started_at, duration_ms, request, \
     response_status, response_headers, response_body, error, outcome) \
     SELECT '00000000-0000-7000-a000-' || printf('%012d', x), \
     '00000000-0000-7000-9000-' || printf('%012d', x), 1, $3 + x, 1, \
     '{\"method\":\"POST\",\"url\":\"http://127.0.0.1/hook\",\"headers\":[],\"body\":\"{}\"}', \
     200, '{}', 'ok', NULL, 'succeeded' FROM n",
];

const POSTGRES: [&str; 3] = [
    "INSERT INTO events (id, event_type, vars, idempotency_key, created_at) \
     SELECT '00000000-0000-7000-8000-' || lpad(x::text, 12, '0'), 'kc_appointment_book', \
     '{\"patient_name\":\"Preloaded\",\"clinic_name\":\"Riverside\"}', NULL, $3 + x \
     FROM generate_series($1::int8, $2::int8) AS x",
    "INSERT INTO deliveries (id, event_id, webhook_id, status, attempts, next_attempt_at, \
     created_at, updated_at, last_status, is_test) \
     SELECT '00000000-0000-7000-9000-' || lpad(x::text, 12, '0'), \
     '00000000-0000-7000-8000-' || lpad(x::text, 12, '0'), $4, 'succeeded', 1, $3 + x, $3 + x, \
     $3 + x + 1, 200, FALSE FROM generate_series($1::int8, $2::int8) AS x",
    "INSERT INTO attempts (id, delivery_id, attempt_no, started_at, duration_ms, request, \
     response_status, response_headers, response_body, error, outcome) \
     SELECT '00000000-0000-7000-a000-' || lpad(x::text, 12, '0'), \
     '00000000-0000-7000-9000-' || lpad(x::text, 12, '0'), 1, $3 + x, 1, \
     '{\"method\":\"POST\",\"url\":\"http://127.0.0.1/hook\",\"headers\":[],\"body\":\"{}\"}', \
     200, '{}', 'ok', NULL, 'succeeded' FROM generate_series($1::int8, $2::int8) AS x",
];

/// Writes `rows` old events of `webhook_id` (each delivered at the first attempt), dated
/// before now, into the migrated database at `url`.
pub async fn preload_history(url: &str, webhook_id: &str, rows: u64) -> Result<()> {
    let rows = rows as i64;
    // One millisecond apart, all in the past.
    let base = crate::now_ms() - rows - 60_000;
    let chunks = (0..rows)
        .step_by(CHUNK as usize)
        .map(|from| (from, (from + CHUNK as i64).min(rows) - 1));
    // The same chunked loop for either connection type.
    macro_rules! insert_chunks {
        ($conn:expr, $statements:expr) => {
            for (from, to) in chunks {
                let mut tx = $conn.begin().await?;
                for sql in $statements {
                    sqlx::query(sql)
                        .bind(from)
                        .bind(to)
                        .bind(base)
                        .bind(webhook_id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        };
    }
    if url.starts_with("postgres") {
        let mut conn = PgConnection::connect(url).await?;
        insert_chunks!(conn, POSTGRES);
    } else {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("bad SQLite URL {url:?}: {e}")))?
            .busy_timeout(Duration::from_secs(60));
        let mut conn = SqliteConnection::connect_with(&options).await?;
        insert_chunks!(conn, SQLITE);
    }
    Ok(())
}
