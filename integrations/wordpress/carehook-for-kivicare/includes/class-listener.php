<?php
/**
 * Listens to KiviCare's hooks (4.x, and the 3.x names older sites fire) and
 * captures the matching carehook event.
 *
 * A hook's arguments are only used for the record's id: everything sent is
 * read back from KiviCare's tables by the resolver and cut to the event's
 * catalog variables, so what KiviCare passes along (plain passwords on
 * sign-up, temporary passwords for new doctors) never reaches the queue.
 *
 * Some changes need the state before them (the previous status, a deleted
 * record's data, whether a bill was already paid): the REST request is
 * looked at before KiviCare's controller runs.
 *
 * @package carehook-for-kivicare
 */

defined( 'ABSPATH' ) || exit;

/**
 * Hooks → events.
 */
final class Carehook_KC_Listener {

	/** @var Carehook_KC_Resolver */
	private $resolve;

	/** State read before KiviCare's controller ran, by record (`appointment:3`). */
	private $before = array();

	/** The REST request being served, when it is KiviCare's. */
	private $route = '';

	/** Its method. */
	private $method = '';

	public function __construct( Carehook_KC_Resolver $resolver ) {
		$this->resolve = $resolver;
	}

	public function register() {
		add_filter( 'rest_request_before_callbacks', array( $this, 'before_rest' ), 5, 3 );
		add_filter( 'rest_request_after_callbacks', array( $this, 'after_rest' ), 50, 3 );

		// Appointments, 4.x.
		add_action( 'kc_after_create_appointment', array( $this, 'appointment_booked' ), 20, 1 );
		add_action( 'kc_appointment_status_update', array( $this, 'appointment_status' ), 20, 2 );
		add_action( 'kc_appointment_cancelled', array( $this, 'appointment_cancelled' ), 20, 1 );
		add_action( 'kc_appointment_updated', array( $this, 'appointment_updated' ), 20, 2 );
		add_action( 'kc_appointment_deleted', array( $this, 'appointment_deleted' ), 20, 1 );
		add_action( 'kc_appointment_create_tax', array( $this, 'checked_in' ), 20, 6 );
		add_action( 'kivicare_after_update_bill', array( $this, 'bill_updated' ), 20, 1 );
		// Appointments, 3.x names.
		add_action( 'kc_appointment_book', array( $this, 'appointment_booked' ), 20, 1 );
		add_action( 'kc_appointment_cancel', array( $this, 'appointment_cancelled' ), 20, 1 );
		add_action( 'kc_encounter_bill_paid', array( $this, 'bill_updated' ), 20, 1 );

		// People.
		foreach ( array( 'kc_patient_save', 'kivicare_patient_registered' ) as $hook ) {
			add_action( $hook, array( $this, 'patient_added' ), 20, 1 );
		}
		add_action( 'kivicare_after_user_register', array( $this, 'user_registered' ), 20, 1 );
		add_action( 'kc_patient_update', array( $this, 'patient_updated' ), 20, 1 );
		add_action( 'kc_patient_delete', array( $this, 'patient_deleted' ), 20, 1 );
		foreach ( array( 'kc_doctor_save', 'kc_doctor_register' ) as $hook ) {
			add_action( $hook, array( $this, 'doctor_added' ), 20, 1 );
		}
		add_action( 'kc_doctor_update', array( $this, 'doctor_updated' ), 20, 1 );
		add_action( 'kc_receptionist_save', array( $this, 'receptionist_added' ), 20, 1 );
		add_action( 'kc_receptionist_update', array( $this, 'receptionist_updated' ), 20, 1 );
		add_action( 'kc_receptionist_delete', array( $this, 'receptionist_deleted' ), 20, 1 );

		// Encounters.
		add_action( 'kc_encounter_save', array( $this, 'encounter_added' ), 20, 1 );
		add_action( 'kc_encounter_update', array( $this, 'encounter_updated' ), 20, 1 );
		add_action( 'kc_before_delete_encounter', array( $this, 'encounter_deleted' ), 20, 1 );

		// Clinics (KiviCare Pro).
		add_action( 'kcpro_clinic_save', array( $this, 'clinic_added' ), 20, 1 );
		add_action( 'kcpro_clinic_update', array( $this, 'clinic_updated' ), 20, 1 );
		add_action( 'kcpro_clinic_delete', array( $this, 'clinic_deleted' ), 20, 1 );
	}

	/**
	 * A hook's record id: an int, `['id' => …]` (or `user_id` for people),
	 * an object with `id`. Nothing else of the argument is read.
	 *
	 * @param mixed  $arg     The hook's first argument.
	 * @param string $id_key  Which key holds the id.
	 */
	public static function id_of( $arg, $id_key = 'id' ) {
		if ( is_numeric( $arg ) ) {
			return (int) $arg;
		}
		if ( is_array( $arg ) ) {
			foreach ( array( $id_key, 'id', 'ID' ) as $k ) {
				if ( isset( $arg[ $k ] ) && is_numeric( $arg[ $k ] ) ) {
					return (int) $arg[ $k ];
				}
			}
		}
		if ( is_object( $arg ) ) {
			foreach ( array( $id_key, 'id', 'ID' ) as $k ) {
				if ( isset( $arg->$k ) && is_numeric( $arg->$k ) ) {
					return (int) $arg->$k;
				}
			}
		}
		return 0;
	}

	// ------------------------------------------------------------------
	// Before and after KiviCare's REST controllers.
	// ------------------------------------------------------------------

	/**
	 * Reads the state a change needs to be described (previous status, a
	 * record about to be deleted, whether a bill was paid).
	 */
	public function before_rest( $response, $handler, $request ) {
		if ( ! ( $request instanceof WP_REST_Request ) ) {
			return $response;
		}
		$route = (string) $request->get_route();
		if ( 0 !== strpos( $route, '/kivicare/v1/' ) ) {
			return $response;
		}
		$this->route  = $route;
		$this->method = strtoupper( (string) $request->get_method() );
		try {
			if ( preg_match( '#^/kivicare/v1/appointments/(\d+)(?:/status)?$#', $route, $m ) ) {
				$row = $this->resolve->appointment_row( (int) $m[1] );
				if ( $row ) {
					$this->before[ 'appointment:' . $m[1] ] = array(
						'row'  => $row,
						'vars' => 'DELETE' === $this->method ? $this->resolve->appointment( (int) $m[1] ) : array(),
					);
				}
			} elseif ( preg_match( '#^/kivicare/v1/bills/(\d+)$#', $route, $m ) ) {
				$bill = $this->resolve->bill_row( (int) $m[1] );
				if ( $bill ) {
					$this->before[ 'bill:' . $m[1] ] = array( 'row' => $bill );
					if ( ! empty( $bill['appointment_id'] ) ) {
						$this->before[ 'appointment:' . $bill['appointment_id'] ] = array(
							'row'  => $this->resolve->appointment_row( (int) $bill['appointment_id'] ),
							'vars' => array(),
						);
					}
				}
			} elseif ( 'DELETE' === $this->method && preg_match( '#^/kivicare/v1/patients/(\d+)$#', $route, $m ) ) {
				$id                                = (int) $m[1];
				$this->before[ 'patient:' . $id ] = array( 'vars' => $this->resolve->clinic( $this->resolve->clinic_of_user( 'patient', $id ) ) + $this->resolve->person( 'patient', $id ) );
			} elseif ( 'DELETE' === $this->method && preg_match( '#^/kivicare/v1/encounters/(\d+)$#', $route, $m ) ) {
				$this->before[ 'encounter:' . $m[1] ] = array( 'vars' => $this->resolve->encounter( (int) $m[1] ) );
			} elseif ( 'DELETE' === $this->method && preg_match( '#^/kivicare/v1/receptionists/(\d+)$#', $route, $m ) ) {
				$id                                     = (int) $m[1];
				$this->before[ 'receptionist:' . $id ] = array( 'vars' => $this->resolve->clinic( $this->resolve->clinic_of_user( 'receptionist', $id ) ) + $this->resolve->person( 'receptionist', $id ) );
			}
		} catch ( \Throwable $e ) {
			// The bridge never breaks KiviCare's request.
			carehook_kc_log_error( $e );
		}
		return $response;
	}

	/**
	 * A booking made pending (by staff, or a patient paying online) fires no
	 * hook in KiviCare 4.3; carehook's own records fire kc_appointment_book
	 * for every new appointment, so the bridge does too, once the request
	 * answered 201.
	 */
	public function after_rest( $response, $handler, $request ) {
		try {
			if ( $request instanceof WP_REST_Request && 'POST' === strtoupper( $request->get_method() ) && '/kivicare/v1/appointments' === $request->get_route()
				&& $response instanceof WP_REST_Response && 201 === $response->get_status() ) {
				$data = $response->get_data();
				$id   = is_array( $data ) ? (int) ( $data['data']['appointment_id'] ?? ( $data['appointment_id'] ?? 0 ) ) : 0;
				if ( $id ) {
					$this->appointment_booked( $id );
				}
			}
		} catch ( \Throwable $e ) {
			carehook_kc_log_error( $e );
		}
		return $response;
	}

	/** Runs `$fn`, never letting an error reach KiviCare's request. */
	private function guard( callable $fn ) {
		try {
			$fn();
		} catch ( \Throwable $e ) {
			carehook_kc_log_error( $e );
		}
	}

	private function creating_appointment() {
		return 'POST' === $this->method && '/kivicare/v1/appointments' === $this->route;
	}

	// ------------------------------------------------------------------
	// Appointments.
	// ------------------------------------------------------------------

	public function appointment_booked( $arg ) {
		$this->guard(
			function () use ( $arg ) {
				$id   = self::id_of( $arg );
				$vars = $this->resolve->appointment( $id );
				if ( $vars ) {
					Carehook_KC_Outbox::capture( 'kc_appointment_book', 'appointment:' . $id, 'created', $this->resolve->common() + $vars );
				}
			}
		);
	}

	public function appointment_cancelled( $arg ) {
		$this->appointment_status( $arg, 0 );
	}

	/**
	 * A status change; KiviCare's pay-later gateway also sets "booked" while
	 * the appointment is being created, which is the booking itself.
	 */
	public function appointment_status( $arg, $status = null ) {
		$this->guard(
			function () use ( $arg, $status ) {
				$id = self::id_of( $arg );
				if ( $this->creating_appointment() ) {
					$this->appointment_booked( $id );
					return;
				}
				$vars = $this->resolve->appointment( $id, $status );
				if ( ! $vars ) {
					return;
				}
				$new      = $vars['appointment_status_code'];
				$before   = $this->before[ 'appointment:' . $id ]['row'] ?? null;
				$previous = $before ? (string) $before['status'] : Carehook_KC_Outbox::last_status( 'appointment:' . $id );
				if ( null !== $previous && $previous === $new ) {
					return; // Nothing changed: carehook's records fire nothing for that either.
				}
				$vars['appointment_previous_status'] = null === $previous ? '' : Carehook_KC_Mapper::status_word( $previous );
				// The change is "now <new>": the same hook fired again (or its
				// 3.x twin) repeats the last captured change and is dropped.
				Carehook_KC_Outbox::capture( 'kc_appointment_status_change', 'appointment:' . $id, 'status:' . $new, $this->resolve->common() + $vars );
				if ( '4' === $new ) {
					$this->capture_encounter_and_bill( $id );
				}
			}
		);
	}

	/**
	 * An edit: a new status (KiviCare's checkout from the bill sets one this
	 * way) is a status change; new date, time, doctor, services or
	 * description is an update.
	 */
	public function appointment_updated( $arg, $changes = array() ) {
		$this->guard(
			function () use ( $arg, $changes ) {
				$id     = self::id_of( $arg );
				$before = $this->before[ 'appointment:' . $id ]['row'] ?? null;
				$now    = $this->resolve->appointment_row( $id );
				if ( ! $now ) {
					return;
				}
				if ( $before && (string) $before['status'] !== (string) $now['status'] ) {
					$this->appointment_status( $id, (int) $now['status'] );
				}
				$fields  = array( 'appointment_start_date', 'appointment_start_time', 'appointment_end_date', 'appointment_end_time', 'doctor_id', 'clinic_id', 'description', 'visit_type' );
				$changed = ! $before;
				foreach ( $fields as $f ) {
					if ( $before && (string) ( $before[ $f ] ?? '' ) !== (string) ( $now[ $f ] ?? '' ) ) {
						$changed = true;
					}
				}
				if ( ! $before && is_array( $changes ) && array_keys( $changes ) === array( 'status' ) ) {
					$changed = false; // Only a status came in, handled above or by its own hook.
				}
				if ( ! $changed ) {
					return;
				}
				$vars = $this->resolve->appointment( $id );
				$fp   = array();
				foreach ( $fields as $f ) {
					$fp[] = (string) ( $now[ $f ] ?? '' );
				}
				Carehook_KC_Outbox::capture( 'kc_appointment_update', 'appointment:' . $id, substr( hash( 'sha256', implode( "\x1f", $fp ) . "\x1f" . $vars['service_names'] ), 0, 32 ), $this->resolve->common() + $vars );
			}
		);
	}

	public function appointment_deleted( $arg ) {
		$this->guard(
			function () use ( $arg ) {
				$id   = self::id_of( $arg );
				$vars = $this->before[ 'appointment:' . $id ]['vars'] ?? array();
				if ( $vars ) {
					Carehook_KC_Outbox::capture( 'kc_appointment_delete', 'appointment:' . $id, 'deleted', $this->resolve->common() + $vars );
				}
			}
		);
	}

	/** Check-in: KiviCare made the encounter and its bill. */
	public function checked_in( $appointment_id, $a = null, $b = null, $c = null, $encounter_id = null, $bill_id = null ) {
		$this->guard(
			function () use ( $appointment_id ) {
				$this->capture_encounter_and_bill( self::id_of( $appointment_id ) );
			}
		);
	}

	private function capture_encounter_and_bill( $appointment_id ) {
		$encounter = $this->resolve->encounter_of_appointment( $appointment_id );
		if ( ! $encounter ) {
			return;
		}
		$vars = $this->resolve->encounter( (int) $encounter['id'] );
		Carehook_KC_Outbox::capture( 'kc_encounter_add', 'encounter:' . $encounter['id'], 'created', $this->resolve->common() + $vars );
		$bill = $this->resolve->bill_of_encounter( (int) $encounter['id'] );
		if ( $bill ) {
			Carehook_KC_Outbox::capture( 'kc_bill_add', 'bill:' . $bill['id'], 'created', $this->resolve->common() + $vars + $this->resolve->bill( $bill ) );
		}
	}

	/**
	 * A bill saved. Marked paid now and not before: the payment, and the
	 * appointment's payment complete when the bill is an appointment's.
	 */
	public function bill_updated( $arg ) {
		$this->guard(
			function () use ( $arg ) {
				$bill_id = self::id_of( $arg );
				$bill    = $this->resolve->bill_row( $bill_id );
				if ( ! $bill || 'paid' !== strtolower( (string) $bill['payment_status'] ) ) {
					return;
				}
				$before = $this->before[ 'bill:' . $bill_id ]['row'] ?? null;
				if ( $before && 'paid' === strtolower( (string) $before['payment_status'] ) ) {
					return;
				}
				$encounter = $this->resolve->encounter_row( (int) $bill['encounter_id'] );
				$people    = $encounter ? $this->resolve->encounter( (int) $encounter['id'] ) : array();
				$clinic    = $this->resolve->clinic( (int) ( $bill['clinic_id'] ?? ( $encounter['clinic_id'] ?? 0 ) ) );
				$bill_vars = $this->resolve->bill( $bill );
				$payment   = $this->resolve->payment( $bill, $clinic );
				Carehook_KC_Outbox::capture( 'kc_payment_add', 'bill:' . $bill_id, 'paid', $this->resolve->common() + $clinic + $people + $bill_vars + $payment );
				$appointment_id = (int) ( $bill['appointment_id'] ?? 0 );
				if ( ! $appointment_id && $encounter ) {
					$appointment_id = (int) $encounter['appointment_id'];
				}
				if ( $appointment_id ) {
					$vars = $this->resolve->appointment( $appointment_id );
					if ( $vars ) {
						Carehook_KC_Outbox::capture( 'kc_appointment_payment_complete', 'appointment:' . $appointment_id, 'paid:bill-' . $bill_id, $this->resolve->common() + $vars + $bill_vars + $payment );
					}
				}
			}
		);
	}

	// ------------------------------------------------------------------
	// People, encounters, clinics.
	// ------------------------------------------------------------------

	/** A person event; `$fp` null means "hash of the values" (an update). */
	private function person_event( $event, $kind, $arg, $fp ) {
		$this->guard(
			function () use ( $event, $kind, $arg, $fp ) {
				$id = self::id_of( $arg, 'patient' === $kind ? 'id' : 'user_id' );
				if ( ! $id ) {
					return;
				}
				$vars = $this->before[ $kind . ':' . $id ]['vars'] ?? array();
				if ( ! $vars ) {
					$vars = $this->resolve->clinic( $this->resolve->clinic_of_user( $kind, $id ) ) + $this->resolve->person( $kind, $id );
				}
				if ( empty( $vars[ $kind . '_id' ] ) ) {
					return;
				}
				Carehook_KC_Outbox::capture( $event, $kind . ':' . $id, null === $fp ? Carehook_KC_Mapper::fingerprint( $vars ) : $fp, $this->resolve->common() + $vars );
			}
		);
	}

	public function patient_added( $arg ) {
		$this->person_event( 'kc_patient_add', 'patient', $arg, 'created' );
	}

	/** A sign-up in the booking widget: only the user id is read; the params (with the plain password) are not. */
	public function user_registered( $user_id ) {
		$user = get_userdata( (int) $user_id );
		if ( $user && in_array( 'kiviCare_patient', (array) $user->roles, true ) ) {
			$this->person_event( 'kc_patient_add', 'patient', (int) $user_id, 'created' );
		}
	}

	public function patient_updated( $arg ) {
		$this->person_event( 'kc_patient_update', 'patient', $arg, null );
	}

	public function patient_deleted( $arg ) {
		$this->person_event( 'kc_patient_delete', 'patient', $arg, 'deleted' );
	}

	public function doctor_added( $arg ) {
		$this->person_event( 'kc_doctor_add', 'doctor', $arg, 'created' );
	}

	public function doctor_updated( $arg ) {
		$this->person_event( 'kc_doctor_update', 'doctor', $arg, null );
	}

	public function receptionist_added( $arg ) {
		$this->person_event( 'kc_receptionist_add', 'receptionist', $arg, 'created' );
	}

	public function receptionist_updated( $arg ) {
		$this->person_event( 'kc_receptionist_update', 'receptionist', $arg, null );
	}

	public function receptionist_deleted( $arg ) {
		$this->person_event( 'kc_receptionist_delete', 'receptionist', $arg, 'deleted' );
	}

	/**
	 * An encounter or clinic event: the record's variables (read before a
	 * delete, else now); `$fp` null means "hash of the values" (an update).
	 */
	private function record_event( $event, $kind, $arg, $fp ) {
		$this->guard(
			function () use ( $event, $kind, $arg, $fp ) {
				$id   = self::id_of( $arg );
				$vars = $this->before[ $kind . ':' . $id ]['vars'] ?? array();
				if ( ! $vars ) {
					$vars = 'encounter' === $kind ? $this->resolve->encounter( $id ) : $this->resolve->clinic( $id );
				}
				if ( $vars ) {
					Carehook_KC_Outbox::capture( $event, $kind . ':' . $id, null === $fp ? Carehook_KC_Mapper::fingerprint( $vars ) : $fp, $this->resolve->common() + $vars );
				}
			}
		);
	}

	public function encounter_added( $arg ) {
		$this->record_event( 'kc_encounter_add', 'encounter', $arg, 'created' );
	}

	public function encounter_updated( $arg ) {
		$this->record_event( 'kc_encounter_update', 'encounter', $arg, null );
	}

	public function encounter_deleted( $arg ) {
		$this->record_event( 'kc_encounter_delete', 'encounter', $arg, 'deleted' );
	}

	public function clinic_added( $arg ) {
		$this->record_event( 'kc_clinic_add', 'clinic', $arg, 'created' );
	}

	public function clinic_updated( $arg ) {
		$this->record_event( 'kc_clinic_update', 'clinic', $arg, null );
	}

	public function clinic_deleted( $arg ) {
		$this->record_event( 'kc_clinic_delete', 'clinic', $arg, 'deleted' );
	}
}
