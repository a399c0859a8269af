<?php
/**
 * Plugin Name:       carehook for KiviCare
 * Description:       Sends KiviCare's bookings, status changes, patients, encounters and paid bills to carehook, which delivers them to Slack, Teams, Zapier and the rest — durably, after the page has answered.
 * Version:           0.1.0
 * Requires at least: 6.0
 * Requires PHP:      8.0
 * Author:            carehook
 * License:           GPL-2.0-or-later
 * License URI:       https://www.gnu.org/licenses/gpl-2.0.html
 * Text Domain:       carehook-for-kivicare
 *
 * @package carehook-for-kivicare
 */

defined( 'ABSPATH' ) || exit;

define( 'CAREHOOK_KC_VERSION', '0.1.0' );
define( 'CAREHOOK_KC_FILE', __FILE__ );

require_once __DIR__ . '/includes/class-mapper.php';
require_once __DIR__ . '/includes/class-resolver.php';
require_once __DIR__ . '/includes/class-outbox.php';
require_once __DIR__ . '/includes/class-listener.php';
require_once __DIR__ . '/includes/class-admin.php';

/**
 * Logs an error of the bridge without any record's values (a message and
 * where it happened only), and never rethrows: KiviCare's request goes on.
 *
 * @param \Throwable $e The error.
 */
function carehook_kc_log_error( \Throwable $e ) {
	error_log( sprintf( 'carehook-for-kivicare: %s at %s:%d', get_class( $e ), basename( $e->getFile() ), $e->getLine() ) ); // phpcs:ignore WordPress.PHP.DevelopmentFunctions
}

register_activation_hook(
	__FILE__,
	static function () {
		Carehook_KC_Outbox::install();
		Carehook_KC_Outbox::drain_key();
		if ( ! wp_next_scheduled( 'carehook_kc_drain' ) ) {
			wp_schedule_event( time() + 60, 'carehook_kc_minute', 'carehook_kc_drain' );
		}
	}
);

register_deactivation_hook(
	__FILE__,
	static function () {
		wp_clear_scheduled_hook( 'carehook_kc_drain' );
	}
);

add_filter(
	'cron_schedules',
	static function ( $schedules ) {
		$schedules['carehook_kc_minute'] = array(
			'interval' => 60,
			'display'  => __( 'Every minute (carehook queue)', 'carehook-for-kivicare' ),
		);
		return $schedules;
	}
);

// WP-Cron sends whatever is due (retries after backoff, anything a lost
// loopback request left behind).
add_action(
	'carehook_kc_drain',
	static function () {
		Carehook_KC_Outbox::drain( 20 );
	}
);

add_action(
	'plugins_loaded',
	static function () {
		if ( get_option( 'carehook_kc_db_version' ) !== Carehook_KC_Outbox::DB_VERSION ) {
			Carehook_KC_Outbox::install();
		}
		( new Carehook_KC_Listener( new Carehook_KC_Resolver() ) )->register();
		( new Carehook_KC_Admin() )->register();
		add_action( 'shutdown', array( 'Carehook_KC_Outbox', 'on_shutdown' ), 1000 );
	}
);
