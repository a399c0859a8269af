<?php
/**
 * Removing the plugin removes its queue table and its options (the token too).
 *
 * @package carehook-for-kivicare
 */

defined( 'WP_UNINSTALL_PLUGIN' ) || exit;

global $wpdb;
$wpdb->query( 'DROP TABLE IF EXISTS ' . $wpdb->prefix . 'carehook_kc_outbox' ); // phpcs:ignore WordPress.DB
foreach ( array( 'carehook_kc_url', 'carehook_kc_token', 'carehook_kc_date_format', 'carehook_kc_time_format', 'carehook_kc_currency', 'carehook_kc_drain_key', 'carehook_kc_db_version' ) as $option ) {
	delete_option( $option );
}
wp_clear_scheduled_hook( 'carehook_kc_drain' );
