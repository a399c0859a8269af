<?php
/**
 * Fires one KiviCare hook the given number of times outside any request, as
 * KiviCare does when it re-fires a hook, then sends what the bridge queued:
 *   php fire-hook.php WPDIR HOOK RECORD_ID TIMES
 *
 * @package carehook-for-kivicare
 */

error_reporting( E_ALL & ~E_DEPRECATED & ~E_NOTICE & ~E_WARNING );
$_SERVER['HTTP_HOST']   = '127.0.0.1';
$_SERVER['REQUEST_URI'] = '/';
require $argv[1] . '/wp-load.php';
$arg = ( $argv[5] ?? '' ) === 'array' ? array( 'id' => (int) $argv[3] ) : (int) $argv[3];
for ( $i = 0; $i < (int) $argv[4]; $i++ ) {
	do_action( $argv[2], $arg );
}
echo json_encode( Carehook_KC_Outbox::drain( 10 ) ), "\n";
