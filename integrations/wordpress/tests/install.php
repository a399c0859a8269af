<?php
/**
 * Installs WordPress in the directory given, activates KiviCare and the
 * bridge, points the bridge at carehook, and prints the admin's application
 * password as JSON. Run by setup-site.sh.
 *
 * @package carehook-for-kivicare
 */

error_reporting( E_ALL & ~E_DEPRECATED & ~E_NOTICE & ~E_WARNING );
define( 'WP_INSTALLING', true );
$_SERVER['HTTP_HOST']   = parse_url( getenv( 'CAREHOOK_URL' ) ?: 'http://127.0.0.1', PHP_URL_HOST );
$_SERVER['REQUEST_URI'] = '/';
require $argv[1] . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';

ob_start();
wp_install( 'carehook test clinic', 'admin', 'admin@example.com', false, '', 'admin-password-0123' );
ob_end_clean();
wp_set_current_user( 1 );

foreach ( array( 'kivicare-clinic-management-system/kivicare-clinic-management-system.php', 'carehook-for-kivicare/carehook-for-kivicare.php' ) as $plugin ) {
	ob_start();
	$result = activate_plugin( $plugin );
	ob_end_clean();
	if ( is_wp_error( $result ) ) {
		fwrite( STDERR, "activate $plugin: " . $result->get_error_message() . "\n" );
		exit( 1 );
	}
}

update_option( 'carehook_kc_url', getenv( 'CAREHOOK_URL' ) );
update_option( 'carehook_kc_token', getenv( 'CAREHOOK_TOKEN' ) );
update_option( 'timezone_string', 'Europe/London' );

list( $password ) = WP_Application_Passwords::create_new_application_password( 1, array( 'name' => 'carehook test' ) );
echo json_encode( array( 'app_password' => $password ) ), "\n";
