<?php
/**
 * PHPUnit bootstrap: the mapper is pure PHP, loaded without WordPress.
 *
 * @package carehook-for-kivicare
 */

define( 'CAREHOOK_KC_TESTING', true );
require __DIR__ . '/../carehook-for-kivicare/includes/class-mapper.php';
