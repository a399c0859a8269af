<?php
/**
 * The bridge's outbox: events are written to a table of their own inside
 * KiviCare's request (and its transaction: a change KiviCare rolls back
 * takes its event with it), then sent to carehook after the response, one
 * at a time and in order, with a short timeout and backoff.
 *
 * Order is strict: while the oldest pending event waits for a retry, the
 * newer ones wait behind it, so a receiver never sees "cancelled" before
 * "booked". An event carehook refuses for good (a 4xx) is marked failed and
 * no longer holds the others up.
 *
 * @package carehook-for-kivicare
 */

defined( 'ABSPATH' ) || exit;

/**
 * Capture, drain, retry.
 */
final class Carehook_KC_Outbox {

	const DB_VERSION = '1';

	/** After this many failed attempts an event is marked failed (about 2 days with the backoff). */
	const MAX_ATTEMPTS = 50;

	/** Seconds one request to carehook may take. */
	const TIMEOUT = 3;

	/** Whether this request captured an event (then it sends after the response). */
	private static $captured = false;

	public static function table() {
		global $wpdb;
		return $wpdb->prefix . 'carehook_kc_outbox';
	}

	/** Creates or upgrades the table (activation, and a version check on load). */
	public static function install() {
		global $wpdb;
		require_once ABSPATH . 'wp-admin/includes/upgrade.php';
		$table   = self::table();
		$collate = $wpdb->get_charset_collate();
		dbDelta(
			"CREATE TABLE {$table} (
			id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
			event varchar(64) NOT NULL,
			record varchar(64) NOT NULL,
			change_fp varchar(64) NOT NULL,
			idempotency_key varchar(191) NOT NULL,
			payload longtext NOT NULL,
			status varchar(10) NOT NULL DEFAULT 'pending',
			attempts int(10) unsigned NOT NULL DEFAULT 0,
			next_attempt_at datetime NOT NULL,
			response_code int(10) unsigned DEFAULT NULL,
			last_error text,
			carehook_event_id varchar(64) DEFAULT NULL,
			created_at datetime NOT NULL,
			sent_at datetime DEFAULT NULL,
			PRIMARY KEY  (id),
			UNIQUE KEY idempotency_key (idempotency_key),
			KEY status_id (status,id),
			KEY record_event (record,event)
			) {$collate};"
		);
		update_option( 'carehook_kc_db_version', self::DB_VERSION );
	}

	/**
	 * Queues one event unless it repeats the last change captured for the
	 * same record and event (a hook fired twice). Returns whether it was queued.
	 *
	 * @param string $event       carehook event name.
	 * @param string $record      `appointment:12`…
	 * @param string $fingerprint What changed.
	 * @param array  $vars        Candidate variables; cut to the event's own.
	 */
	public static function capture( $event, $record, $fingerprint, array $vars ) {
		global $wpdb;
		$table = self::table();
		$data  = Carehook_KC_Mapper::only_event_variables( $event, $vars );
		if ( ! $data ) {
			return false;
		}
		$last = $wpdb->get_var( $wpdb->prepare( "SELECT change_fp FROM {$table} WHERE record = %s AND event = %s ORDER BY id DESC LIMIT 1", $record, $event ) ); // phpcs:ignore WordPress.DB
		if ( null !== $last && $last === $fingerprint ) {
			return false;
		}
		$seq = (int) $wpdb->get_var( $wpdb->prepare( "SELECT COUNT(*) FROM {$table} WHERE record = %s AND event = %s", $record, $event ) ); // phpcs:ignore WordPress.DB
		$key = Carehook_KC_Mapper::idempotency_key( home_url(), $event, $record, $fingerprint, $seq );
		$now = gmdate( 'Y-m-d H:i:s' );
		// INSERT IGNORE: the unique key is the last guard against a duplicate.
		$done = $wpdb->query( // phpcs:ignore WordPress.DB
			$wpdb->prepare(
				"INSERT IGNORE INTO {$table} (event, record, change_fp, idempotency_key, payload, status, attempts, next_attempt_at, created_at) VALUES (%s, %s, %s, %s, %s, 'pending', 0, %s, %s)",
				$event,
				$record,
				$fingerprint,
				$key,
				carehook_kc_json( $data ),
				$now,
				$now
			)
		);
		if ( $done ) {
			self::$captured = true;
		}
		return (bool) $done;
	}

	/**
	 * The status code of the newest captured event of an appointment, for a
	 * status hook fired outside KiviCare's REST API (no state read before it).
	 *
	 * @param string $record `appointment:12`.
	 * @return string|null
	 */
	public static function last_status( $record ) {
		global $wpdb;
		$table   = self::table();
		$payload = $wpdb->get_var( $wpdb->prepare( "SELECT payload FROM {$table} WHERE record = %s ORDER BY id DESC LIMIT 1", $record ) ); // phpcs:ignore WordPress.DB
		$data    = is_string( $payload ) ? json_decode( $payload, true ) : null;
		return is_array( $data ) && isset( $data['appointment_status_code'] ) ? (string) $data['appointment_status_code'] : null;
	}

	/** Whether this request queued anything. */
	public static function captured_in_this_request() {
		return self::$captured;
	}

	/**
	 * Sends due events in order until the queue is empty, the oldest one
	 * fails, or the time budget is spent. One drain at a time per site (a
	 * MySQL lock), so two workers never send the same event or overtake
	 * each other.
	 *
	 * @param int $budget Seconds this call may spend.
	 * @return array{sent:int,failed:int,waiting:int}
	 */
	public static function drain( $budget = 20 ) {
		global $wpdb;
		$result = array(
			'sent'    => 0,
			'failed'  => 0,
			'waiting' => 0,
		);
		$lock   = 'carehook_kc_' . $wpdb->prefix;
		if ( '1' !== (string) $wpdb->get_var( $wpdb->prepare( 'SELECT GET_LOCK(%s, 0)', $lock ) ) ) { // phpcs:ignore WordPress.DB
			return $result;
		}
		$table = self::table();
		$until = microtime( true ) + $budget;
		try {
			while ( microtime( true ) < $until ) {
				$row = $wpdb->get_row( "SELECT * FROM {$table} WHERE status = 'pending' ORDER BY id LIMIT 1", ARRAY_A ); // phpcs:ignore WordPress.DB
				if ( ! $row ) {
					break;
				}
				if ( strtotime( $row['next_attempt_at'] . ' UTC' ) > time() ) {
					break;
				}
				$outcome = self::send( $row['event'], json_decode( $row['payload'], true ), $row['idempotency_key'] );
				if ( $outcome['ok'] ) {
					$wpdb->update( // phpcs:ignore WordPress.DB
						$table,
						array(
							'status'            => 'sent',
							'attempts'          => (int) $row['attempts'] + 1,
							'response_code'     => $outcome['status'],
							'last_error'        => null,
							'carehook_event_id' => $outcome['event_id'],
							'sent_at'           => gmdate( 'Y-m-d H:i:s' ),
						),
						array( 'id' => $row['id'] )
					);
					++$result['sent'];
					continue;
				}
				$attempts  = (int) $row['attempts'] + 1;
				$permanent = Carehook_KC_Mapper::is_permanent_failure( $outcome['status'] ) || $attempts >= self::MAX_ATTEMPTS;
				$wpdb->update( // phpcs:ignore WordPress.DB
					$table,
					array(
						'status'          => $permanent ? 'failed' : 'pending',
						'attempts'        => $attempts,
						'response_code'   => $outcome['status'] ? $outcome['status'] : null,
						'last_error'      => $outcome['error'],
						'next_attempt_at' => gmdate( 'Y-m-d H:i:s', time() + Carehook_KC_Mapper::backoff_seconds( $attempts ) ),
					),
					array( 'id' => $row['id'] )
				);
				if ( $permanent ) {
					++$result['failed'];
					continue;
				}
				break;
			}
			$result['waiting'] = (int) $wpdb->get_var( "SELECT COUNT(*) FROM {$table} WHERE status = 'pending'" ); // phpcs:ignore WordPress.DB
		} finally {
			$wpdb->query( $wpdb->prepare( 'SELECT RELEASE_LOCK(%s)', $lock ) ); // phpcs:ignore WordPress.DB
		}
		return $result;
	}

	/**
	 * `POST /api/v1/events` with a short timeout. carehook answers 202 for a
	 * new event and 200 for a key it has seen: both mean delivered.
	 *
	 * @return array{ok:bool,status:int,error:?string,event_id:?string,body:string}
	 */
	public static function send( $event, $data, $key ) {
		$url   = rtrim( (string) get_option( 'carehook_kc_url', '' ), '/' );
		$token = (string) get_option( 'carehook_kc_token', '' );
		if ( '' === $url || '' === $token ) {
			return array(
				'ok'       => false,
				'status'   => 0,
				'error'    => __( 'carehook URL or token not set (Settings → carehook)', 'carehook-for-kivicare' ),
				'event_id' => null,
				'body'     => '',
			);
		}
		$response = wp_remote_post(
			$url . '/api/v1/events',
			array(
				'timeout'     => self::TIMEOUT,
				'redirection' => 0,
				'headers'     => array(
					'Authorization' => 'Bearer ' . $token,
					'Content-Type'  => 'application/json',
					'User-Agent'    => 'carehook-for-kivicare/' . CAREHOOK_KC_VERSION,
				),
				'body'        => carehook_kc_json(
					array(
						'event'           => $event,
						'data'            => (object) ( is_array( $data ) ? $data : array() ),
						'idempotency_key' => $key,
					)
				),
			)
		);
		if ( is_wp_error( $response ) ) {
			return array(
				'ok'       => false,
				'status'   => 0,
				'error'    => $response->get_error_message(),
				'event_id' => null,
				'body'     => '',
			);
		}
		$status = (int) wp_remote_retrieve_response_code( $response );
		$body   = (string) wp_remote_retrieve_body( $response );
		$json   = json_decode( $body, true );
		if ( 200 === $status || 202 === $status ) {
			return array(
				'ok'       => true,
				'status'   => $status,
				'error'    => null,
				'event_id' => is_array( $json ) && isset( $json['id'] ) ? (string) $json['id'] : null,
				'body'     => $body,
			);
		}
		// carehook's errors name the field, never a patient value: safe to keep.
		$message = is_array( $json ) && isset( $json['error']['message'] ) ? (string) $json['error']['message'] : substr( $body, 0, 300 );
		return array(
			'ok'       => false,
			'status'   => $status,
			/* translators: 1: HTTP status, 2: carehook's message. */
			'error'    => sprintf( __( 'carehook answered %1$d: %2$s', 'carehook-for-kivicare' ), $status, $message ),
			'event_id' => null,
			'body'     => $body,
		);
	}

	/** "Retry now": every pending event is due, failed ones go back in line. */
	public static function retry_now( $id = 0 ) {
		global $wpdb;
		$table = self::table();
		$now   = gmdate( 'Y-m-d H:i:s' );
		if ( $id ) {
			$wpdb->query( $wpdb->prepare( "UPDATE {$table} SET status = 'pending', next_attempt_at = %s WHERE id = %d AND status <> 'sent'", $now, $id ) ); // phpcs:ignore WordPress.DB
		} else {
			$wpdb->query( $wpdb->prepare( "UPDATE {$table} SET status = 'pending', next_attempt_at = %s WHERE status <> 'sent'", $now ) ); // phpcs:ignore WordPress.DB
		}
		return self::drain();
	}

	/** Counts per status. */
	public static function counts() {
		global $wpdb;
		$table  = self::table();
		$counts = array(
			'pending' => 0,
			'sent'    => 0,
			'failed'  => 0,
		);
		foreach ( (array) $wpdb->get_results( "SELECT status, COUNT(*) AS n FROM {$table} GROUP BY status", ARRAY_A ) as $r ) { // phpcs:ignore WordPress.DB
			$counts[ $r['status'] ] = (int) $r['n'];
		}
		return $counts;
	}

	/** The newest rows, for the queue page and its REST twin (no payloads: they hold patient data). */
	public static function recent( $limit = 100, $status = '' ) {
		global $wpdb;
		$table = self::table();
		$cols  = 'id, event, record, idempotency_key, status, attempts, next_attempt_at, response_code, last_error, carehook_event_id, created_at, sent_at';
		if ( in_array( $status, array( 'pending', 'sent', 'failed' ), true ) ) {
			return (array) $wpdb->get_results( $wpdb->prepare( "SELECT {$cols} FROM {$table} WHERE status = %s ORDER BY id DESC LIMIT %d", $status, $limit ), ARRAY_A ); // phpcs:ignore WordPress.DB
		}
		return (array) $wpdb->get_results( $wpdb->prepare( "SELECT {$cols} FROM {$table} ORDER BY id DESC LIMIT %d", $limit ), ARRAY_A ); // phpcs:ignore WordPress.DB
	}

	/**
	 * After the response: with PHP-FPM the response is finished first and
	 * the queue sent in this process; elsewhere (mod_php, `php -S`) a
	 * loopback request to the drain route does it, so the clinic's request
	 * never waits on carehook. WP-Cron picks up whatever is left.
	 */
	public static function on_shutdown() {
		if ( ! self::$captured ) {
			return;
		}
		if ( function_exists( 'fastcgi_finish_request' ) ) {
			fastcgi_finish_request();
			self::drain( 10 );
			return;
		}
		if ( function_exists( 'litespeed_finish_request' ) ) {
			litespeed_finish_request();
			self::drain( 10 );
			return;
		}
		self::spawn();
	}

	/**
	 * Fires the drain route on this site without waiting for its answer: the
	 * whole request is written, then the socket closed.
	 */
	public static function spawn() {
		$url   = rest_url( 'carehook-kivicare/v1/drain' );
		$parts = wp_parse_url( $url );
		if ( empty( $parts['host'] ) ) {
			return;
		}
		$https = isset( $parts['scheme'] ) && 'https' === $parts['scheme'];
		$port  = isset( $parts['port'] ) ? (int) $parts['port'] : ( $https ? 443 : 80 );
		$path  = ( $parts['path'] ?? '/' ) . ( isset( $parts['query'] ) ? '?' . $parts['query'] : '' );
		$body  = 'key=' . rawurlencode( self::drain_key() );
		$errno = 0;
		$err   = '';
		$sock  = @fsockopen( ( $https ? 'ssl://' : '' ) . $parts['host'], $port, $errno, $err, 1 ); // phpcs:ignore WordPress.PHP.NoSilencedErrors
		if ( ! $sock ) {
			return;
		}
		$request = "POST {$path} HTTP/1.1\r\nHost: {$parts['host']}" . ( isset( $parts['port'] ) ? ':' . $port : '' ) . "\r\n"
			. "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " . strlen( $body ) . "\r\nConnection: close\r\n\r\n" . $body;
		fwrite( $sock, $request ); // phpcs:ignore WordPress.WP.AlternativeFunctions
		fclose( $sock ); // phpcs:ignore WordPress.WP.AlternativeFunctions
	}

	/** The shared secret of the drain route (it only sends what is queued, but nobody else need call it). */
	public static function drain_key() {
		$key = (string) get_option( 'carehook_kc_drain_key', '' );
		if ( '' === $key ) {
			$key = wp_generate_password( 32, false );
			update_option( 'carehook_kc_drain_key', $key, false );
		}
		return $key;
	}
}
