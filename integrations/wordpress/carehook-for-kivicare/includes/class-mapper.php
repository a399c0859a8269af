<?php
/**
 * The pure half of the bridge: turns KiviCare's stored values into carehook's
 * catalog variables. No WordPress and no database here, so PHPUnit tests it
 * on its own (integrations/wordpress/tests/MapperTest.php).
 *
 * @package carehook-for-kivicare
 */

defined( 'ABSPATH' ) || defined( 'CAREHOOK_KC_TESTING' ) || exit;

/**
 * Names, dates, status words, amounts and the idempotency key.
 */
final class Carehook_KC_Mapper {

	/** KiviCare's appointment status codes and carehook's words for them. */
	const STATUS_WORDS = array(
		'0' => 'cancelled',
		'1' => 'booked',
		'2' => 'pending',
		'3' => 'check_out',
		'4' => 'check_in',
	);

	/**
	 * The variable groups of carehook's catalog (crates/core/src/catalog.rs).
	 * An event's `data` may name only its own variables (else carehook
	 * answers 422), so every payload is cut down to this list before it is
	 * queued; it is also what keeps anything else (a password in a hook's
	 * arguments) from ever leaving the site. `event_name` and `event_id` are
	 * carehook's to fill.
	 */
	const GROUPS = array(
		'common'       => array( 'current_date', 'current_time', 'current_date_time', 'current_user_id' ),
		'clinic'       => array( 'clinic_id', 'clinic_name', 'clinic_email', 'clinic_contact_number', 'clinic_address', 'clinic_city', 'clinic_country', 'clinic_postal_code', 'clinic_currency' ),
		'doctor'       => array( 'doctor_id', 'doctor_name', 'doctor_first_name', 'doctor_last_name', 'doctor_email', 'doctor_contact_number', 'doctor_specialization', 'doctor_license_number' ),
		'patient'      => array( 'patient_id', 'patient_name', 'patient_first_name', 'patient_last_name', 'patient_email', 'patient_contact_number', 'patient_dob', 'patient_gender', 'patient_blood_group', 'patient_address', 'patient_city', 'patient_country', 'patient_postal_code' ),
		'receptionist' => array( 'receptionist_id', 'receptionist_name', 'receptionist_first_name', 'receptionist_last_name', 'receptionist_email', 'receptionist_contact_number' ),
		'appointment'  => array( 'appointment_id', 'appointment_date', 'appointment_start_time', 'appointment_end_time', 'appointment_status', 'appointment_status_code', 'appointment_description', 'appointment_created_at', 'service_names' ),
		'encounter'    => array( 'encounter_id', 'encounter_date', 'encounter_status', 'encounter_description' ),
		'bill'         => array( 'bill_id', 'bill_number', 'bill_total', 'bill_discount', 'bill_amount', 'bill_status' ),
		'payment'      => array( 'payment_id', 'payment_amount', 'payment_currency', 'payment_method', 'payment_date' ),
	);

	/** Each event the bridge sends: its groups, then its extra variables. */
	const EVENTS = array(
		'kc_appointment_book'             => array( array( 'common', 'clinic', 'doctor', 'patient', 'appointment' ), array() ),
		'kc_appointment_update'           => array( array( 'common', 'clinic', 'doctor', 'patient', 'appointment' ), array() ),
		'kc_appointment_delete'           => array( array( 'common', 'clinic', 'doctor', 'patient', 'appointment' ), array() ),
		'kc_appointment_status_change'    => array( array( 'common', 'clinic', 'doctor', 'patient', 'appointment' ), array( 'appointment_previous_status' ) ),
		'kc_appointment_payment_complete' => array( array( 'common', 'clinic', 'doctor', 'patient', 'appointment', 'bill', 'payment' ), array() ),
		'kc_patient_add'                  => array( array( 'common', 'clinic', 'patient' ), array() ),
		'kc_patient_update'               => array( array( 'common', 'clinic', 'patient' ), array() ),
		'kc_patient_delete'               => array( array( 'common', 'clinic', 'patient' ), array() ),
		'kc_doctor_add'                   => array( array( 'common', 'clinic', 'doctor' ), array() ),
		'kc_doctor_update'                => array( array( 'common', 'clinic', 'doctor' ), array() ),
		'kc_receptionist_add'             => array( array( 'common', 'clinic', 'receptionist' ), array() ),
		'kc_receptionist_update'          => array( array( 'common', 'clinic', 'receptionist' ), array() ),
		'kc_receptionist_delete'          => array( array( 'common', 'clinic', 'receptionist' ), array() ),
		'kc_clinic_add'                   => array( array( 'common', 'clinic' ), array() ),
		'kc_clinic_update'                => array( array( 'common', 'clinic' ), array() ),
		'kc_clinic_delete'                => array( array( 'common', 'clinic' ), array() ),
		'kc_encounter_add'                => array( array( 'common', 'clinic', 'doctor', 'patient', 'encounter' ), array( 'appointment_id' ) ),
		'kc_encounter_update'             => array( array( 'common', 'clinic', 'doctor', 'patient', 'encounter' ), array( 'appointment_id' ) ),
		'kc_encounter_delete'             => array( array( 'common', 'clinic', 'doctor', 'patient', 'encounter' ), array( 'appointment_id' ) ),
		'kc_bill_add'                     => array( array( 'common', 'clinic', 'doctor', 'patient', 'encounter', 'bill' ), array() ),
		'kc_payment_add'                  => array( array( 'common', 'clinic', 'patient', 'bill', 'payment' ), array() ),
	);

	/**
	 * The variables `$event` carries, in catalog order.
	 *
	 * @param string $event A carehook event name.
	 * @return string[] Empty for an event the bridge does not send.
	 */
	public static function variables_of( $event ) {
		if ( ! isset( self::EVENTS[ $event ] ) ) {
			return array();
		}
		list( $groups, $extra ) = self::EVENTS[ $event ];
		$names                  = array();
		foreach ( $groups as $group ) {
			$names = array_merge( $names, self::GROUPS[ $group ] );
		}
		return array_values( array_unique( array_merge( $names, $extra ) ) );
	}

	/**
	 * Keeps only `$event`'s variables, each as a string (null and arrays are
	 * dropped: carehook renders a missing variable empty).
	 *
	 * @param string $event Event name.
	 * @param array  $vars  Candidate variables.
	 * @return array<string,string>
	 */
	public static function only_event_variables( $event, array $vars ) {
		$out = array();
		foreach ( self::variables_of( $event ) as $name ) {
			if ( array_key_exists( $name, $vars ) && is_scalar( $vars[ $name ] ) ) {
				$value = $vars[ $name ];
				if ( is_bool( $value ) ) {
					$value = $value ? 'true' : 'false';
				}
				$out[ $name ] = (string) $value;
			}
		}
		return $out;
	}

	/**
	 * carehook's status word for a KiviCare status code (`''` for an unknown one).
	 *
	 * @param int|string|null $code 0 to 4.
	 */
	public static function status_word( $code ) {
		$key = is_numeric( $code ) ? (string) (int) $code : '';
		return self::STATUS_WORDS[ $key ] ?? '';
	}

	/**
	 * First and last name joined by one space (DESIGN.md), trimmed; the
	 * display name when both are empty. Text is kept byte for byte otherwise
	 * (quotes, accents, emoji).
	 */
	public static function full_name( $first, $last, $display = '' ) {
		$parts = array_filter(
			array( trim( (string) $first ), trim( (string) $last ) ),
			static function ( $p ) {
				return '' !== $p;
			}
		);
		if ( ! $parts ) {
			return trim( (string) $display );
		}
		return implode( ' ', $parts );
	}

	/**
	 * "street, city, postal code, country" with empty parts left out.
	 *
	 * @param array $parts Address parts in that order.
	 */
	public static function join_address( array $parts ) {
		$kept = array();
		foreach ( $parts as $p ) {
			$p = trim( (string) $p );
			if ( '' !== $p ) {
				$kept[] = $p;
			}
		}
		return implode( ', ', $kept );
	}

	/**
	 * A `Y-m-d` date (or a `Y-m-d H:i:s` value's date) written with a PHP
	 * date format; `''` when it is empty or not a date.
	 *
	 * @param string|null $value  The stored date.
	 * @param string      $format PHP date format, e.g. `Y-m-d` or `d/m/Y`.
	 */
	public static function format_date( $value, $format = 'Y-m-d' ) {
		$value = trim( (string) $value );
		if ( ! preg_match( '/^(\d{4}-\d{2}-\d{2})/', $value, $m ) || '0000-00-00' === $m[1] ) {
			return '';
		}
		$date = DateTimeImmutable::createFromFormat( '!Y-m-d', $m[1], new DateTimeZone( 'UTC' ) );
		if ( false === $date || $date->format( 'Y-m-d' ) !== $m[1] ) {
			return '';
		}
		return $date->format( $format );
	}

	/**
	 * An `H:i[:s]` time written with a PHP time format (default 24 h `H:i`).
	 *
	 * @param string|null $value  The stored time.
	 * @param string      $format PHP date format for the time.
	 */
	public static function format_time( $value, $format = 'H:i' ) {
		$value = trim( (string) $value );
		if ( ! preg_match( '/^(\d{1,2}):(\d{2})(?::(\d{2}))?$/', $value, $m ) ) {
			return '';
		}
		$h = (int) $m[1];
		$i = (int) $m[2];
		$s = isset( $m[3] ) ? (int) $m[3] : 0;
		if ( $h > 23 || $i > 59 || $s > 59 ) {
			return '';
		}
		$time = ( new DateTimeImmutable( '2000-01-01 00:00:00', new DateTimeZone( 'UTC' ) ) )->setTime( $h, $i, $s );
		return $time->format( $format );
	}

	/**
	 * A MySQL `Y-m-d H:i:s` in the given zone, as RFC 3339 with the offset
	 * (`2026-11-26T14:05:00+00:00`), which is what carehook's DateTime
	 * variables hold.
	 *
	 * @param string|null  $value MySQL datetime, local to `$zone`.
	 * @param DateTimeZone $zone  The zone the value was written in.
	 */
	public static function rfc3339( $value, DateTimeZone $zone ) {
		$value = trim( (string) $value );
		if ( '' === $value || 0 === strpos( $value, '0000-00-00' ) ) {
			return '';
		}
		$date = DateTimeImmutable::createFromFormat( 'Y-m-d H:i:s', $value, $zone );
		if ( false === $date ) {
			return '';
		}
		return $date->format( 'Y-m-d\TH:i:sP' );
	}

	/**
	 * An amount as an exact decimal string with at least two decimals:
	 * `110.5` → `110.50`, `12` → `12.00`, `0.125` stays `0.125`. Works on
	 * the text, never through a float, so nothing is rounded. KiviCare keeps
	 * amounts as text; a value that is not a plain decimal gives `''`.
	 *
	 * @param string|int|float|null $value The stored amount.
	 */
	public static function decimal( $value ) {
		if ( is_float( $value ) ) {
			// A float only reaches here from arithmetic; 15 significant digits
			// is the most a double holds without inventing digits.
			$value = rtrim( rtrim( sprintf( '%.15F', $value ), '0' ), '.' );
		}
		$text = str_replace( array( ' ', ',' ), '', trim( (string) $value ) );
		if ( ! preg_match( '/^(-?)(\d*)(?:\.(\d*))?$/', $text, $m ) || ( '' === $m[2] && ( ! isset( $m[3] ) || '' === $m[3] ) ) ) {
			return '';
		}
		$whole = ltrim( $m[2], '0' );
		$whole = '' === $whole ? '0' : $whole;
		$frac  = isset( $m[3] ) ? $m[3] : '';
		$frac  = str_pad( $frac, 2, '0' );
		$sign  = ( '-' === $m[1] && trim( $whole . $frac, '0' ) !== '' ) ? '-' : '';
		return $sign . $whole . '.' . $frac;
	}

	/**
	 * The sum of decimal strings, exactly (for a bill's total from its items).
	 *
	 * @param string[] $values Decimal strings.
	 */
	public static function decimal_sum( array $values ) {
		$scale  = 2;
		$normal = array();
		foreach ( $values as $v ) {
			$d = self::decimal( $v );
			if ( '' === $d ) {
				continue;
			}
			$normal[] = $d;
			$scale    = max( $scale, strlen( substr( strrchr( $d, '.' ), 1 ) ) );
		}
		$total = '0';
		foreach ( $normal as $d ) {
			list( $w, $f ) = explode( '.', ltrim( $d, '-' ) );
			$units         = ltrim( $w . str_pad( $f, $scale, '0' ), '0' );
			$units         = '' === $units ? '0' : $units;
			$total         = self::add_integers( $total, 0 === strpos( $d, '-' ) ? '-' . $units : $units );
		}
		$neg   = 0 === strpos( $total, '-' );
		$abs   = str_pad( ltrim( $total, '-' ), $scale + 1, '0', STR_PAD_LEFT );
		$whole = substr( $abs, 0, -$scale );
		$frac  = substr( $abs, -$scale );
		return self::decimal( ( $neg ? '-' : '' ) . $whole . '.' . $frac );
	}

	/** Adds two signed integers written as digit strings. */
	private static function add_integers( $a, $b ) {
		$an = 0 === strpos( $a, '-' );
		$bn = 0 === strpos( $b, '-' );
		$a  = ltrim( $a, '-' );
		$b  = ltrim( $b, '-' );
		if ( $an === $bn ) {
			return ( $an ? '-' : '' ) . self::digits_add( $a, $b );
		}
		// Different signs: subtract the smaller magnitude from the larger.
		$cmp = self::digits_cmp( $a, $b );
		if ( 0 === $cmp ) {
			return '0';
		}
		if ( $cmp > 0 ) {
			return ( $an ? '-' : '' ) . self::digits_sub( $a, $b );
		}
		return ( $bn ? '-' : '' ) . self::digits_sub( $b, $a );
	}

	private static function digits_add( $a, $b ) {
		$n     = max( strlen( $a ), strlen( $b ) );
		$a     = str_pad( $a, $n, '0', STR_PAD_LEFT );
		$b     = str_pad( $b, $n, '0', STR_PAD_LEFT );
		$out   = '';
		$carry = 0;
		for ( $i = $n - 1; $i >= 0; $i-- ) {
			$s     = (int) $a[ $i ] + (int) $b[ $i ] + $carry;
			$out   = ( $s % 10 ) . $out;
			$carry = intdiv( $s, 10 );
		}
		$out = ( $carry ? '1' : '' ) . $out;
		$out = ltrim( $out, '0' );
		return '' === $out ? '0' : $out;
	}

	private static function digits_cmp( $a, $b ) {
		$a = ltrim( $a, '0' );
		$b = ltrim( $b, '0' );
		if ( strlen( $a ) !== strlen( $b ) ) {
			return strlen( $a ) <=> strlen( $b );
		}
		return strcmp( $a, $b ) <=> 0;
	}

	private static function digits_sub( $a, $b ) {
		$n      = strlen( $a );
		$b      = str_pad( $b, $n, '0', STR_PAD_LEFT );
		$out    = '';
		$borrow = 0;
		for ( $i = $n - 1; $i >= 0; $i-- ) {
			$d = (int) $a[ $i ] - (int) $b[ $i ] - $borrow;
			if ( $d < 0 ) {
				$d     += 10;
				$borrow = 1;
			} else {
				$borrow = 0;
			}
			$out = $d . $out;
		}
		$out = ltrim( $out, '0' );
		return '' === $out ? '0' : $out;
	}

	/**
	 * A three-letter currency code from what KiviCare stores: a gateway's
	 * code (`USD`), or a clinic's prefix/postfix symbol. `''` when unknown.
	 *
	 * @param string ...$candidates Codes or symbols, most trusted first.
	 */
	public static function currency_code( ...$candidates ) {
		$symbols = array(
			'$'   => 'USD',
			'US$' => 'USD',
			'£'   => 'GBP',
			'€'   => 'EUR',
			'₹'   => 'INR',
			'¥'   => 'JPY',
			'A$'  => 'AUD',
			'C$'  => 'CAD',
			'R'   => 'ZAR',
			'₦'   => 'NGN',
			'CHF' => 'CHF',
		);
		foreach ( $candidates as $c ) {
			$c = trim( (string) $c );
			if ( preg_match( '/^[A-Za-z]{3}$/', $c ) ) {
				return strtoupper( $c );
			}
			if ( isset( $symbols[ $c ] ) ) {
				return $symbols[ $c ];
			}
		}
		return '';
	}

	/**
	 * The idempotency key of one captured change: the same hook fired again
	 * for the same change gives the same key, so carehook records it once.
	 * `$seq` tells apart a real repeat of an identical change (cancelled,
	 * re-booked, cancelled again); the site's URL keeps two sites sharing one
	 * carehook apart.
	 *
	 * @param string $site        The site's home URL.
	 * @param string $event       carehook event name.
	 * @param string $record      `appointment:12`, `patient:7`…
	 * @param string $fingerprint What changed (`status:1>0`, a hash of the values…).
	 * @param int    $seq         How many earlier, different changes of this record and event were captured.
	 */
	public static function idempotency_key( $site, $event, $record, $fingerprint, $seq ) {
		$digest = hash( 'sha256', implode( "\n", array( $site, $event, $record, $fingerprint, (string) (int) $seq ) ) );
		return 'kivicare-' . $event . '-' . str_replace( ':', '-', $record ) . '-' . substr( $digest, 0, 32 );
	}

	/**
	 * A stable fingerprint of a record's values (the ones that say what
	 * changed; not the current time).
	 *
	 * @param array $vars Variables.
	 */
	public static function fingerprint( array $vars ) {
		unset( $vars['current_date'], $vars['current_time'], $vars['current_date_time'], $vars['current_user_id'] );
		ksort( $vars );
		return substr( hash( 'sha256', (string) carehook_kc_json( $vars ) ), 0, 32 );
	}

	/**
	 * Backoff before the n-th retry (1-based): 30 s doubling to at most an
	 * hour, so a site whose carehook is down for a day sends a few dozen
	 * requests, not thousands.
	 *
	 * @param int $attempts Failed attempts so far.
	 */
	public static function backoff_seconds( $attempts ) {
		$attempts = max( 1, (int) $attempts );
		return (int) min( 3600, 30 * ( 2 ** min( 7, $attempts - 1 ) ) );
	}

	/**
	 * Whether carehook's answer means "do not send this again": a 4xx says
	 * the event itself is wrong (422 names the field), and a retry would get
	 * the same answer. Not so 401, 403 and 404 (a wrong token or URL in the
	 * settings: the events wait until it is fixed), 408 and 429.
	 *
	 * @param int $status HTTP status.
	 */
	public static function is_permanent_failure( $status ) {
		$status = (int) $status;
		return $status >= 400 && $status < 500 && ! in_array( $status, array( 401, 403, 404, 408, 429 ), true );
	}
}

/**
 * JSON without escaped slashes or Unicode, so a hash does not depend on the
 * WordPress version (wp_json_encode) being loaded.
 *
 * @param mixed $value Any JSON-able value.
 */
function carehook_kc_json( $value ) {
	return json_encode( $value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PARTIAL_OUTPUT_ON_ERROR );
}
