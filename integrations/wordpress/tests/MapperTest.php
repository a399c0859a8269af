<?php
/**
 * The bridge's mapping: KiviCare's stored values → carehook's variables.
 *
 * @package carehook-for-kivicare
 */

use PHPUnit\Framework\TestCase;

/**
 * Carehook_KC_Mapper.
 */
final class MapperTest extends TestCase {

	public function test_status_codes_map_to_carehooks_words() {
		$this->assertSame( 'cancelled', Carehook_KC_Mapper::status_word( 0 ) );
		$this->assertSame( 'booked', Carehook_KC_Mapper::status_word( '1' ) );
		$this->assertSame( 'pending', Carehook_KC_Mapper::status_word( 2 ) );
		$this->assertSame( 'check_out', Carehook_KC_Mapper::status_word( '3' ) );
		$this->assertSame( 'check_in', Carehook_KC_Mapper::status_word( 4 ) );
		$this->assertSame( '', Carehook_KC_Mapper::status_word( 9 ) );
		$this->assertSame( '', Carehook_KC_Mapper::status_word( null ) );
		$this->assertSame( '', Carehook_KC_Mapper::status_word( 'booked' ) );
	}

	public function test_names_join_with_one_space_and_keep_every_character() {
		$this->assertSame( 'Maria "Mimi" 🌸 O\'Brien-Núñez', Carehook_KC_Mapper::full_name( ' Maria "Mimi" 🌸 ', "O'Brien-Núñez" ) );
		$this->assertSame( 'Zoë', Carehook_KC_Mapper::full_name( 'Zoë', '' ) );
		$this->assertSame( 'Ng', Carehook_KC_Mapper::full_name( '', 'Ng' ) );
		$this->assertSame( 'zoe123', Carehook_KC_Mapper::full_name( '', '', 'zoe123' ) );
	}

	public function test_addresses_leave_out_empty_parts() {
		$this->assertSame( '12 Harbour Street, London, SE1 9RT, United Kingdom', Carehook_KC_Mapper::join_address( array( '12 Harbour Street', 'London', 'SE1 9RT', 'United Kingdom' ) ) );
		$this->assertSame( 'London, United Kingdom', Carehook_KC_Mapper::join_address( array( '', 'London', ' ', 'United Kingdom' ) ) );
	}

	public function test_dates_and_times_in_the_clinics_format() {
		$this->assertSame( '2026-12-02', Carehook_KC_Mapper::format_date( '2026-12-02' ) );
		$this->assertSame( '02/12/2026', Carehook_KC_Mapper::format_date( '2026-12-02 09:30:00', 'd/m/Y' ) );
		$this->assertSame( '', Carehook_KC_Mapper::format_date( '0000-00-00' ) );
		$this->assertSame( '', Carehook_KC_Mapper::format_date( '2026-02-30' ) );
		$this->assertSame( '', Carehook_KC_Mapper::format_date( 'soon' ) );
		$this->assertSame( '09:30', Carehook_KC_Mapper::format_time( '09:30:00' ) );
		$this->assertSame( '4:30 PM', Carehook_KC_Mapper::format_time( '16:30:00', 'g:i A' ) );
		$this->assertSame( '', Carehook_KC_Mapper::format_time( '25:00:00' ) );
		$this->assertSame( '', Carehook_KC_Mapper::format_time( '' ) );
	}

	public function test_datetimes_are_rfc3339_in_the_sites_zone() {
		$this->assertSame( '2026-07-01T14:05:00+01:00', Carehook_KC_Mapper::rfc3339( '2026-07-01 14:05:00', new DateTimeZone( 'Europe/London' ) ) );
		$this->assertSame( '2026-11-26T14:05:00+00:00', Carehook_KC_Mapper::rfc3339( '2026-11-26 14:05:00', new DateTimeZone( 'Europe/London' ) ) );
		$this->assertSame( '', Carehook_KC_Mapper::rfc3339( '0000-00-00 00:00:00', new DateTimeZone( 'UTC' ) ) );
	}

	public function test_amounts_are_exact_decimal_strings() {
		$this->assertSame( '110.50', Carehook_KC_Mapper::decimal( '110.5' ) );
		$this->assertSame( '120.00', Carehook_KC_Mapper::decimal( '120' ) );
		$this->assertSame( '120.00', Carehook_KC_Mapper::decimal( 120 ) );
		$this->assertSame( '0.125', Carehook_KC_Mapper::decimal( '0.125' ) );
		$this->assertSame( '1234.50', Carehook_KC_Mapper::decimal( '1,234.50' ) );
		$this->assertSame( '0.10', Carehook_KC_Mapper::decimal( 0.1 ) );
		$this->assertSame( '12345678901234567.89', Carehook_KC_Mapper::decimal( '12345678901234567.89' ) );
		$this->assertSame( '-5.00', Carehook_KC_Mapper::decimal( '-5' ) );
		$this->assertSame( '0.00', Carehook_KC_Mapper::decimal( '-0' ) );
		$this->assertSame( '', Carehook_KC_Mapper::decimal( 'free' ) );
		$this->assertSame( '', Carehook_KC_Mapper::decimal( '' ) );
		$this->assertSame( '', Carehook_KC_Mapper::decimal( null ) );
	}

	public function test_sums_never_go_through_a_float() {
		$this->assertSame( '0.30', Carehook_KC_Mapper::decimal_sum( array( '0.1', '0.2' ) ) );
		$this->assertSame( '120.50', Carehook_KC_Mapper::decimal_sum( array( '100', '20.5' ) ) );
		$this->assertSame( '99999999999999999.99', Carehook_KC_Mapper::decimal_sum( array( '99999999999999999', '0.99' ) ) );
		$this->assertSame( '-0.50', Carehook_KC_Mapper::decimal_sum( array( '1.5', '-2' ) ) );
		$this->assertSame( '0.00', Carehook_KC_Mapper::decimal_sum( array() ) );
	}

	public function test_currency_codes_from_codes_or_symbols() {
		$this->assertSame( 'GBP', Carehook_KC_Mapper::currency_code( '', '£' ) );
		$this->assertSame( 'EUR', Carehook_KC_Mapper::currency_code( 'eur', '$' ) );
		$this->assertSame( '', Carehook_KC_Mapper::currency_code( '', 'Rs.' ) );
	}

	public function test_only_the_events_own_variables_are_kept() {
		$vars = array(
			'patient_name'    => 'Zoë Ng',
			'patient_id'      => 7,
			'password'        => 'S3cret',
			'temp_password'   => 'x',
			'appointment_id'  => '3',
			'doctor_name'     => null,
			'service_names'   => array( 'a' ),
			'current_user_id' => '1',
		);
		$this->assertSame(
			array(
				'current_user_id' => '1',
				'patient_id'      => '7',
				'patient_name'    => 'Zoë Ng',
			),
			Carehook_KC_Mapper::only_event_variables( 'kc_patient_add', $vars )
		);
		$this->assertSame( array(), Carehook_KC_Mapper::only_event_variables( 'kc_no_such_event', $vars ) );
		$this->assertContains( 'appointment_previous_status', Carehook_KC_Mapper::variables_of( 'kc_appointment_status_change' ) );
		$this->assertContains( 'appointment_id', Carehook_KC_Mapper::variables_of( 'kc_encounter_add' ) );
		$this->assertNotContains( 'appointment_id', Carehook_KC_Mapper::variables_of( 'kc_bill_add' ) );
		foreach ( array_keys( Carehook_KC_Mapper::EVENTS ) as $event ) {
			foreach ( Carehook_KC_Mapper::variables_of( $event ) as $name ) {
				$this->assertDoesNotMatchRegularExpression( '/pass|secret|token|api_key/', $name );
			}
		}
	}

	public function test_a_repeated_change_has_the_same_key_and_another_change_another() {
		$a = Carehook_KC_Mapper::idempotency_key( 'http://clinic.test', 'kc_appointment_status_change', 'appointment:3', 'status:0', 1 );
		$this->assertSame( $a, Carehook_KC_Mapper::idempotency_key( 'http://clinic.test', 'kc_appointment_status_change', 'appointment:3', 'status:0', 1 ) );
		$this->assertNotSame( $a, Carehook_KC_Mapper::idempotency_key( 'http://clinic.test', 'kc_appointment_status_change', 'appointment:3', 'status:0', 3 ) );
		$this->assertNotSame( $a, Carehook_KC_Mapper::idempotency_key( 'http://other.test', 'kc_appointment_status_change', 'appointment:3', 'status:0', 1 ) );
		$this->assertNotSame( $a, Carehook_KC_Mapper::idempotency_key( 'http://clinic.test', 'kc_appointment_status_change', 'appointment:3', 'status:1', 1 ) );
		$this->assertLessThanOrEqual( 255, strlen( $a ) );
		$this->assertStringStartsWith( 'kivicare-kc_appointment_status_change-appointment-3-', $a );
		$this->assertSame(
			Carehook_KC_Mapper::fingerprint( array( 'patient_name' => 'A', 'current_time' => '10:00' ) ),
			Carehook_KC_Mapper::fingerprint( array( 'current_time' => '11:00', 'patient_name' => 'A' ) )
		);
	}

	public function test_backoff_grows_to_an_hour_and_4xx_is_final() {
		$this->assertSame( 30, Carehook_KC_Mapper::backoff_seconds( 1 ) );
		$this->assertSame( 60, Carehook_KC_Mapper::backoff_seconds( 2 ) );
		$this->assertSame( 3600, Carehook_KC_Mapper::backoff_seconds( 40 ) );
		$this->assertTrue( Carehook_KC_Mapper::is_permanent_failure( 422 ) );
		$this->assertTrue( Carehook_KC_Mapper::is_permanent_failure( 400 ) );
		$this->assertFalse( Carehook_KC_Mapper::is_permanent_failure( 401 ) );
		$this->assertFalse( Carehook_KC_Mapper::is_permanent_failure( 404 ) );
		$this->assertFalse( Carehook_KC_Mapper::is_permanent_failure( 429 ) );
		$this->assertFalse( Carehook_KC_Mapper::is_permanent_failure( 408 ) );
		$this->assertFalse( Carehook_KC_Mapper::is_permanent_failure( 503 ) );
		$this->assertFalse( Carehook_KC_Mapper::is_permanent_failure( 0 ) );
	}
}
