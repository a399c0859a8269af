<?php
/**
 * Reads KiviCare's records (through $wpdb, inside KiviCare's own request and
 * transaction, so rows not yet committed are seen) and turns them into
 * carehook's variables with the mapper.
 *
 * Where the data lives is described in docs/kivicare.md; every read is by
 * primary key or an indexed id, a handful of queries per event.
 *
 * @package carehook-for-kivicare
 */

defined( 'ABSPATH' ) || exit;

/**
 * Record → variables.
 */
final class Carehook_KC_Resolver {

	/** The clinic's date format (PHP `date()` letters); carehook's default `Y-m-d`. */
	private $date_format;

	/** The clinic's time format; carehook's default 24 h `H:i`. */
	private $time_format;

	public function __construct() {
		$this->date_format = (string) get_option( 'carehook_kc_date_format', 'Y-m-d' );
		$this->time_format = (string) get_option( 'carehook_kc_time_format', 'H:i' );
		if ( '' === trim( $this->date_format ) ) {
			$this->date_format = 'Y-m-d';
		}
		if ( '' === trim( $this->time_format ) ) {
			$this->time_format = 'H:i';
		}
	}

	private function table( $name ) {
		global $wpdb;
		return $wpdb->prefix . 'kc_' . $name;
	}

	private function row( $sql, ...$args ) {
		global $wpdb;
		$row = $wpdb->get_row( $wpdb->prepare( $sql, ...$args ), ARRAY_A ); // phpcs:ignore WordPress.DB
		return is_array( $row ) ? $row : null;
	}

	/** `current_*` in the site's time zone (carehook would use UTC), and who acted. */
	public function common() {
		$now = new DateTimeImmutable( 'now', wp_timezone() );
		return array(
			'current_date'      => $now->format( $this->date_format ),
			'current_time'      => $now->format( $this->time_format ),
			'current_date_time' => $now->format( 'Y-m-d\TH:i:sP' ),
			'current_user_id'   => get_current_user_id() ? (string) get_current_user_id() : '',
		);
	}

	/** The clinic's variables; empty when there is no such clinic. */
	public function clinic( $clinic_id ) {
		$c = $clinic_id ? $this->row( 'SELECT * FROM ' . $this->table( 'clinics' ) . ' WHERE id = %d', $clinic_id ) : null;
		if ( ! $c ) {
			return array();
		}
		$extra = json_decode( (string) ( $c['extra'] ?? '' ), true );
		$extra = is_array( $extra ) ? $extra : array();
		return array(
			'clinic_id'             => (string) $c['id'],
			'clinic_name'           => (string) $c['name'],
			'clinic_email'          => (string) $c['email'],
			'clinic_contact_number' => (string) ( $c['telephone_no'] ?? '' ),
			'clinic_address'        => Carehook_KC_Mapper::join_address( array( $c['address'] ?? '', $c['city'] ?? '', $c['postal_code'] ?? '', $c['country'] ?? '' ) ),
			'clinic_city'           => (string) ( $c['city'] ?? '' ),
			'clinic_country'        => (string) ( $c['country'] ?? '' ),
			'clinic_postal_code'    => (string) ( $c['postal_code'] ?? '' ),
			'clinic_currency'       => Carehook_KC_Mapper::currency_code( get_option( 'carehook_kc_currency', '' ), $extra['currency_postfix'] ?? '', $extra['currency_prefix'] ?? '' ),
		);
	}

	/** The first clinic a user (patient, doctor, receptionist) belongs to. */
	public function clinic_of_user( $kind, $user_id ) {
		global $wpdb;
		$tables = array(
			'patient'      => array( 'patient_clinic_mappings', 'patient_id' ),
			'doctor'       => array( 'doctor_clinic_mappings', 'doctor_id' ),
			'receptionist' => array( 'receptionist_clinic_mappings', 'receptionist_id' ),
		);
		if ( isset( $tables[ $kind ] ) ) {
			list( $t, $col ) = $tables[ $kind ];
			$id              = $wpdb->get_var( $wpdb->prepare( 'SELECT clinic_id FROM ' . $this->table( $t ) . " WHERE {$col} = %d ORDER BY id LIMIT 1", $user_id ) ); // phpcs:ignore WordPress.DB
			if ( $id ) {
				return (int) $id;
			}
		}
		// The free plugin has one clinic.
		return (int) $wpdb->get_var( 'SELECT id FROM ' . $this->table( 'clinics' ) . ' ORDER BY id LIMIT 1' ); // phpcs:ignore WordPress.DB
	}

	/**
	 * A person's variables with `$prefix` (`patient`, `doctor`, `receptionist`).
	 * Reads the WordPress user and its `first_name`, `last_name` and
	 * `basic_data` meta; never the password or any other secret.
	 */
	public function person( $prefix, $user_id ) {
		$user = $user_id ? get_userdata( (int) $user_id ) : false;
		if ( ! $user ) {
			return array();
		}
		$basic = json_decode( (string) get_user_meta( $user->ID, 'basic_data', true ), true );
		$basic = is_array( $basic ) ? $basic : array();
		$first = (string) get_user_meta( $user->ID, 'first_name', true );
		$last  = (string) get_user_meta( $user->ID, 'last_name', true );
		$phone = (string) ( $basic['mobile_number'] ?? '' );
		if ( '' === $phone ) {
			$phone = (string) get_user_meta( $user->ID, 'mobile_number', true );
		}
		$vars = array(
			$prefix . '_id'             => (string) $user->ID,
			$prefix . '_name'           => Carehook_KC_Mapper::full_name( $first, $last, $user->display_name ),
			$prefix . '_first_name'     => $first,
			$prefix . '_last_name'      => $last,
			$prefix . '_email'          => (string) $user->user_email,
			$prefix . '_contact_number' => $phone,
		);
		if ( 'patient' === $prefix ) {
			$gender = (string) ( $basic['gender'] ?? get_user_meta( $user->ID, 'gender', true ) );
			$vars  += array(
				'patient_dob'         => Carehook_KC_Mapper::format_date( $basic['dob'] ?? '', 'Y-m-d' ),
				'patient_gender'      => $gender,
				'patient_blood_group' => (string) ( $basic['blood_group'] ?? '' ),
				'patient_address'     => Carehook_KC_Mapper::join_address( array( $basic['address'] ?? '', $basic['city'] ?? '', $basic['postal_code'] ?? '', $basic['country'] ?? '' ) ),
				'patient_city'        => (string) ( $basic['city'] ?? '' ),
				'patient_country'     => (string) ( $basic['country'] ?? '' ),
				'patient_postal_code' => (string) ( $basic['postal_code'] ?? '' ),
			);
		}
		if ( 'doctor' === $prefix ) {
			$vars += array(
				'doctor_specialization' => self::labels( $basic['specialties'] ?? '' ),
				'doctor_license_number' => (string) ( $basic['license_number'] ?? $basic['registration_number'] ?? '' ),
			);
		}
		return $vars;
	}

	/** Specialties are stored as `[{id, label}]`, a list of words, or text. */
	private static function labels( $value ) {
		if ( is_string( $value ) ) {
			return $value;
		}
		$out = array();
		foreach ( (array) $value as $item ) {
			if ( is_array( $item ) ) {
				$item = $item['label'] ?? ( $item['name'] ?? '' );
			}
			if ( is_scalar( $item ) && '' !== (string) $item ) {
				$out[] = (string) $item;
			}
		}
		return implode( ', ', $out );
	}

	/** The stored appointment row, or null. */
	public function appointment_row( $id ) {
		return $id ? $this->row( 'SELECT * FROM ' . $this->table( 'appointments' ) . ' WHERE id = %d', $id ) : null;
	}

	/**
	 * Every variable of an appointment event: clinic, doctor, patient and the
	 * appointment itself. `$status` overrides the stored status (a hook that
	 * fires before KiviCare writes the new one).
	 */
	public function appointment( $id, $status = null ) {
		global $wpdb;
		$a = $this->appointment_row( $id );
		if ( ! $a ) {
			return array();
		}
		$code     = null === $status ? (string) $a['status'] : (string) (int) $status;
		$services = $wpdb->get_col( // phpcs:ignore WordPress.DB
			$wpdb->prepare(
				'SELECT s.name FROM ' . $this->table( 'appointment_service_mapping' ) . ' m JOIN ' . $this->table( 'services' ) . ' s ON s.id = m.service_id WHERE m.appointment_id = %d ORDER BY m.id',
				$id
			)
		);
		return array_merge(
			$this->clinic( (int) $a['clinic_id'] ),
			$this->person( 'doctor', (int) $a['doctor_id'] ),
			$this->person( 'patient', (int) $a['patient_id'] ),
			array(
				'appointment_id'          => (string) $a['id'],
				'appointment_date'        => Carehook_KC_Mapper::format_date( $a['appointment_start_date'], $this->date_format ),
				'appointment_start_time'  => Carehook_KC_Mapper::format_time( $a['appointment_start_time'], $this->time_format ),
				'appointment_end_time'    => Carehook_KC_Mapper::format_time( $a['appointment_end_time'], $this->time_format ),
				'appointment_status'      => Carehook_KC_Mapper::status_word( $code ),
				'appointment_status_code' => $code,
				'appointment_description' => (string) ( $a['description'] ?? '' ),
				'appointment_created_at'  => Carehook_KC_Mapper::rfc3339( $a['created_at'] ?? '', wp_timezone() ),
				'service_names'           => implode( ', ', array_map( 'strval', (array) $services ) ),
			)
		);
	}

	/** The encounter row, or null. */
	public function encounter_row( $id ) {
		return $id ? $this->row( 'SELECT * FROM ' . $this->table( 'patient_encounters' ) . ' WHERE id = %d', $id ) : null;
	}

	/** Every variable of an encounter event. */
	public function encounter( $id ) {
		$e = $this->encounter_row( $id );
		if ( ! $e ) {
			return array();
		}
		return array_merge(
			$this->clinic( (int) $e['clinic_id'] ),
			$this->person( 'doctor', (int) $e['doctor_id'] ),
			$this->person( 'patient', (int) $e['patient_id'] ),
			array(
				'encounter_id'          => (string) $e['id'],
				'encounter_date'        => Carehook_KC_Mapper::format_date( $e['encounter_date'] ?? ( $e['created_at'] ?? '' ), $this->date_format ),
				'encounter_status'      => '0' === (string) $e['status'] ? 'closed' : 'open',
				'encounter_description' => (string) ( $e['description'] ?? '' ),
				'appointment_id'        => empty( $e['appointment_id'] ) ? '' : (string) $e['appointment_id'],
			)
		);
	}

	/** The bill row, or null. */
	public function bill_row( $id ) {
		return $id ? $this->row( 'SELECT * FROM ' . $this->table( 'bills' ) . ' WHERE id = %d', $id ) : null;
	}

	/** The newest bill of an encounter, or null. */
	public function bill_of_encounter( $encounter_id ) {
		return $this->row( 'SELECT * FROM ' . $this->table( 'bills' ) . ' WHERE encounter_id = %d ORDER BY id DESC LIMIT 1', $encounter_id );
	}

	/** The newest encounter of an appointment, or null. */
	public function encounter_of_appointment( $appointment_id ) {
		return $this->row( 'SELECT * FROM ' . $this->table( 'patient_encounters' ) . ' WHERE appointment_id = %d ORDER BY id DESC LIMIT 1', $appointment_id );
	}

	/** The bill's variables (amounts as exact decimal strings). */
	public function bill( array $b ) {
		$total    = Carehook_KC_Mapper::decimal( $b['total_amount'] ?? '' );
		$discount = Carehook_KC_Mapper::decimal( $b['discount'] ?? '' );
		$amount   = Carehook_KC_Mapper::decimal( $b['actual_amount'] ?? '' );
		return array(
			'bill_id'       => (string) $b['id'],
			// KiviCare prints a bill's id as its number.
			'bill_number'   => (string) $b['id'],
			'bill_total'    => $total,
			'bill_discount' => '' === $discount ? '0.00' : $discount,
			'bill_amount'   => '' === $amount ? $total : $amount,
			'bill_status'   => 'paid' === strtolower( (string) ( $b['payment_status'] ?? '' ) ) ? 'paid' : 'unpaid',
		);
	}

	/**
	 * The payment that settled a bill. KiviCare marks a bill paid without a
	 * payment record of its own; an online payment leaves its gateway row in
	 * `kc_payments_appointment_mappings`, which gives the method and currency.
	 */
	public function payment( array $b, array $clinic_vars ) {
		$mapping = empty( $b['appointment_id'] ) ? null : $this->row( 'SELECT * FROM ' . $this->table( 'payments_appointment_mappings' ) . ' WHERE appointment_id = %d ORDER BY id DESC LIMIT 1', $b['appointment_id'] );
		$amount  = Carehook_KC_Mapper::decimal( $b['actual_amount'] ?? '' );
		return array(
			'payment_id'       => (int) $b['id'],
			'payment_amount'   => '' === $amount ? Carehook_KC_Mapper::decimal( $b['total_amount'] ?? '' ) : $amount,
			'payment_currency' => Carehook_KC_Mapper::currency_code( $mapping['currency'] ?? '', $clinic_vars['clinic_currency'] ?? '' ),
			'payment_method'   => $mapping && '' !== (string) $mapping['payment_mode'] ? (string) $mapping['payment_mode'] : 'manual',
			'payment_date'     => ( new DateTimeImmutable( 'now', wp_timezone() ) )->format( $this->date_format ),
		);
	}
}
