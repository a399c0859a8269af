<?php
/**
 * The admin side: Settings → carehook (URL, token, formats, "send a test
 * event"), Tools → carehook queue (pending, sent, failed with the error,
 * "retry now"), and the REST routes behind them.
 *
 * @package carehook-for-kivicare
 */

defined( 'ABSPATH' ) || exit;

/**
 * Settings page, queue page, REST routes.
 */
final class Carehook_KC_Admin {

	const SETTINGS = 'carehook-kivicare';
	const QUEUE    = 'carehook-kivicare-queue';

	public function register() {
		add_action( 'admin_menu', array( $this, 'menus' ) );
		add_action( 'admin_init', array( $this, 'settings' ) );
		add_action( 'admin_post_carehook_kc_test', array( $this, 'post_test' ) );
		add_action( 'admin_post_carehook_kc_retry', array( $this, 'post_retry' ) );
		add_action( 'rest_api_init', array( $this, 'routes' ) );
	}

	public function menus() {
		add_options_page( __( 'carehook', 'carehook-for-kivicare' ), __( 'carehook', 'carehook-for-kivicare' ), 'manage_options', self::SETTINGS, array( $this, 'settings_page' ) );
		add_management_page( __( 'carehook queue', 'carehook-for-kivicare' ), __( 'carehook queue', 'carehook-for-kivicare' ), 'manage_options', self::QUEUE, array( $this, 'queue_page' ) );
	}

	public function settings() {
		register_setting(
			self::SETTINGS,
			'carehook_kc_url',
			array(
				'type'              => 'string',
				'sanitize_callback' => array( $this, 'sanitize_url' ),
			)
		);
		register_setting(
			self::SETTINGS,
			'carehook_kc_token',
			array(
				'type'              => 'string',
				'sanitize_callback' => array( $this, 'sanitize_token' ),
			)
		);
		foreach ( array( 'carehook_kc_date_format', 'carehook_kc_time_format', 'carehook_kc_currency' ) as $option ) {
			register_setting(
				self::SETTINGS,
				$option,
				array(
					'type'              => 'string',
					'sanitize_callback' => 'sanitize_text_field',
				)
			);
		}
	}

	/** carehook's base URL, without a trailing slash or `/api/v1`. */
	public function sanitize_url( $value ) {
		$value = trim( (string) $value );
		$value = preg_replace( '#/+(api/v1/?(events)?)?/*$#', '', $value );
		if ( '' !== $value && ! wp_http_validate_url( $value ) && ! preg_match( '#^https?://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/.*)?$#', $value ) ) {
			add_settings_error( 'carehook_kc_url', 'carehook_kc_url', __( 'carehook URL: enter an http:// or https:// address, e.g. https://carehook.example.org', 'carehook-for-kivicare' ) );
			return (string) get_option( 'carehook_kc_url', '' );
		}
		return esc_url_raw( $value );
	}

	/** The token field shows a mask; leaving it masked keeps the stored token. */
	public function sanitize_token( $value ) {
		$value = trim( (string) $value );
		if ( '' === $value || preg_match( '/^\*+$/', $value ) ) {
			return (string) get_option( 'carehook_kc_token', '' );
		}
		return $value;
	}

	public function settings_page() {
		if ( ! current_user_can( 'manage_options' ) ) {
			return;
		}
		$answer = get_transient( 'carehook_kc_test_' . get_current_user_id() );
		delete_transient( 'carehook_kc_test_' . get_current_user_id() );
		$has_token = '' !== (string) get_option( 'carehook_kc_token', '' );
		?>
		<div class="wrap">
			<h1><?php esc_html_e( 'carehook for KiviCare', 'carehook-for-kivicare' ); ?></h1>
			<p><?php esc_html_e( 'KiviCare\'s bookings, status changes, patients, encounters and paid bills are queued here and sent to carehook after each page has answered.', 'carehook-for-kivicare' ); ?></p>
			<form method="post" action="options.php">
				<?php settings_fields( self::SETTINGS ); ?>
				<table class="form-table" role="presentation">
					<tr>
						<th scope="row"><label for="carehook_kc_url"><?php esc_html_e( 'carehook URL', 'carehook-for-kivicare' ); ?></label></th>
						<td><input type="url" class="regular-text" id="carehook_kc_url" name="carehook_kc_url" value="<?php echo esc_attr( get_option( 'carehook_kc_url', '' ) ); ?>" placeholder="https://carehook.example.org">
						<p class="description"><?php esc_html_e( 'The address carehook\'s API answers at; events go to /api/v1/events there.', 'carehook-for-kivicare' ); ?></p></td>
					</tr>
					<tr>
						<th scope="row"><label for="carehook_kc_token"><?php esc_html_e( 'Ingest token', 'carehook-for-kivicare' ); ?></label></th>
						<td><input type="password" class="regular-text" id="carehook_kc_token" name="carehook_kc_token" value="<?php echo $has_token ? '********' : ''; ?>" autocomplete="off">
						<p class="description"><?php esc_html_e( 'An API token made in carehook (carehook tokens create --name kivicare); stored in this site\'s options, never shown again.', 'carehook-for-kivicare' ); ?></p></td>
					</tr>
					<tr>
						<th scope="row"><label for="carehook_kc_date_format"><?php esc_html_e( 'Date format', 'carehook-for-kivicare' ); ?></label></th>
						<td><input type="text" id="carehook_kc_date_format" name="carehook_kc_date_format" value="<?php echo esc_attr( get_option( 'carehook_kc_date_format', 'Y-m-d' ) ); ?>">
						<?php /* translators: %s: the site's date format. */ ?>
						<p class="description"><?php echo esc_html( sprintf( __( 'PHP date letters. Y-m-d is carehook\'s own (conditions compare such dates); this site shows dates as %s.', 'carehook-for-kivicare' ), get_option( 'date_format' ) ) ); ?></p></td>
					</tr>
					<tr>
						<th scope="row"><label for="carehook_kc_time_format"><?php esc_html_e( 'Time format', 'carehook-for-kivicare' ); ?></label></th>
						<td><input type="text" id="carehook_kc_time_format" name="carehook_kc_time_format" value="<?php echo esc_attr( get_option( 'carehook_kc_time_format', 'H:i' ) ); ?>">
						<p class="description"><?php esc_html_e( 'H:i (24 h) is carehook\'s own; g:i A gives 4:30 PM.', 'carehook-for-kivicare' ); ?></p></td>
					</tr>
					<tr>
						<th scope="row"><label for="carehook_kc_currency"><?php esc_html_e( 'Currency code', 'carehook-for-kivicare' ); ?></label></th>
						<td><input type="text" id="carehook_kc_currency" name="carehook_kc_currency" maxlength="3" value="<?php echo esc_attr( get_option( 'carehook_kc_currency', '' ) ); ?>" placeholder="GBP">
						<p class="description"><?php esc_html_e( 'Three letters. Empty: taken from the clinic\'s currency symbol in KiviCare.', 'carehook-for-kivicare' ); ?></p></td>
					</tr>
				</table>
				<?php submit_button(); ?>
			</form>
			<h2><?php esc_html_e( 'Send a test event', 'carehook-for-kivicare' ); ?></h2>
			<p><?php esc_html_e( 'Sends kc_clinic_update with your clinic\'s details (no patient data) and shows carehook\'s answer. Webhooks subscribed to it, or to every event, receive it.', 'carehook-for-kivicare' ); ?></p>
			<form method="post" action="<?php echo esc_url( admin_url( 'admin-post.php' ) ); ?>">
				<input type="hidden" name="action" value="carehook_kc_test">
				<?php wp_nonce_field( 'carehook_kc_test' ); ?>
				<?php submit_button( __( 'Send a test event', 'carehook-for-kivicare' ), 'secondary', 'submit', false ); ?>
			</form>
			<?php if ( is_array( $answer ) ) : ?>
				<div class="notice <?php echo $answer['ok'] ? 'notice-success' : 'notice-error'; ?>" style="margin-top:1em">
					<p><strong><?php echo esc_html( $answer['summary'] ); ?></strong></p>
					<?php if ( '' !== $answer['body'] ) : ?>
						<pre style="white-space:pre-wrap"><?php echo esc_html( $answer['body'] ); ?></pre>
					<?php endif; ?>
				</div>
			<?php endif; ?>
		</div>
		<?php
	}

	/**
	 * Sends the test event now (not through the queue) and describes the answer.
	 *
	 * @return array{ok:bool,status:int,summary:string,body:string}
	 */
	public static function send_test() {
		$resolver = new Carehook_KC_Resolver();
		$clinic   = $resolver->clinic( $resolver->clinic_of_user( '', 0 ) );
		$data     = Carehook_KC_Mapper::only_event_variables( 'kc_clinic_update', $resolver->common() + $clinic );
		$outcome  = Carehook_KC_Outbox::send( 'kc_clinic_update', $data, 'kivicare-test-' . wp_generate_uuid4() );
		if ( $outcome['ok'] ) {
			$json  = json_decode( $outcome['body'], true );
			$count = is_array( $json ) && isset( $json['deliveries'] ) ? count( (array) $json['deliveries'] ) : 0;
			/* translators: 1: HTTP status, 2: carehook's event id, 3: number of deliveries. */
			$summary = sprintf( __( 'carehook answered %1$d: event %2$s recorded, %3$d deliveries.', 'carehook-for-kivicare' ), $outcome['status'], $outcome['event_id'], $count );
		} else {
			$summary = (string) $outcome['error'];
		}
		return array(
			'ok'      => $outcome['ok'],
			'status'  => $outcome['status'],
			'summary' => $summary,
			'body'    => $outcome['body'],
		);
	}

	public function post_test() {
		if ( ! current_user_can( 'manage_options' ) ) {
			wp_die( esc_html__( 'Not allowed.', 'carehook-for-kivicare' ), 403 );
		}
		check_admin_referer( 'carehook_kc_test' );
		set_transient( 'carehook_kc_test_' . get_current_user_id(), self::send_test(), 300 );
		wp_safe_redirect( admin_url( 'options-general.php?page=' . self::SETTINGS ) );
		exit;
	}

	public function post_retry() {
		if ( ! current_user_can( 'manage_options' ) ) {
			wp_die( esc_html__( 'Not allowed.', 'carehook-for-kivicare' ), 403 );
		}
		check_admin_referer( 'carehook_kc_retry' );
		$id     = isset( $_POST['id'] ) ? absint( $_POST['id'] ) : 0;
		$result = Carehook_KC_Outbox::retry_now( $id );
		set_transient( 'carehook_kc_retry_' . get_current_user_id(), $result, 300 );
		wp_safe_redirect( admin_url( 'tools.php?page=' . self::QUEUE ) );
		exit;
	}

	public function queue_page() {
		if ( ! current_user_can( 'manage_options' ) ) {
			return;
		}
		$status = isset( $_GET['status'] ) ? sanitize_key( $_GET['status'] ) : ''; // phpcs:ignore WordPress.Security.NonceVerification
		$rows   = Carehook_KC_Outbox::recent( 200, $status );
		$counts = Carehook_KC_Outbox::counts();
		$result = get_transient( 'carehook_kc_retry_' . get_current_user_id() );
		delete_transient( 'carehook_kc_retry_' . get_current_user_id() );
		?>
		<div class="wrap">
			<h1><?php esc_html_e( 'carehook queue', 'carehook-for-kivicare' ); ?></h1>
			<?php if ( is_array( $result ) ) : ?>
				<?php /* translators: 1: sent, 2: failed, 3: still waiting. */ ?>
				<div class="notice notice-info"><p><?php echo esc_html( sprintf( __( 'Sent %1$d, failed %2$d, still waiting %3$d.', 'carehook-for-kivicare' ), $result['sent'], $result['failed'], $result['waiting'] ) ); ?></p></div>
			<?php endif; ?>
			<ul class="subsubsub">
				<li><a href="<?php echo esc_url( admin_url( 'tools.php?page=' . self::QUEUE ) ); ?>"><?php esc_html_e( 'All', 'carehook-for-kivicare' ); ?></a> |</li>
				<?php foreach ( $counts as $name => $n ) : ?>
					<li><a href="<?php echo esc_url( admin_url( 'tools.php?page=' . self::QUEUE . '&status=' . $name ) ); ?>"><?php echo esc_html( $name ); ?> <span class="count">(<?php echo (int) $n; ?>)</span></a> |</li>
				<?php endforeach; ?>
			</ul>
			<form method="post" action="<?php echo esc_url( admin_url( 'admin-post.php' ) ); ?>" style="clear:both;padding-top:1em">
				<input type="hidden" name="action" value="carehook_kc_retry">
				<?php wp_nonce_field( 'carehook_kc_retry' ); ?>
				<?php submit_button( __( 'Retry now', 'carehook-for-kivicare' ), 'primary', 'submit', false ); ?>
				<span class="description"><?php esc_html_e( 'Sends every pending event now, and puts failed ones back in line.', 'carehook-for-kivicare' ); ?></span>
			</form>
			<table class="widefat striped" style="margin-top:1em">
				<thead><tr>
					<th>#</th><th><?php esc_html_e( 'Event', 'carehook-for-kivicare' ); ?></th><th><?php esc_html_e( 'Record', 'carehook-for-kivicare' ); ?></th>
					<th><?php esc_html_e( 'Status', 'carehook-for-kivicare' ); ?></th><th><?php esc_html_e( 'Attempts', 'carehook-for-kivicare' ); ?></th>
					<th><?php esc_html_e( 'Queued (UTC)', 'carehook-for-kivicare' ); ?></th><th><?php esc_html_e( 'Sent / next try (UTC)', 'carehook-for-kivicare' ); ?></th>
					<th><?php esc_html_e( 'Error', 'carehook-for-kivicare' ); ?></th><th></th>
				</tr></thead>
				<tbody>
				<?php if ( ! $rows ) : ?>
					<tr><td colspan="9"><?php esc_html_e( 'Nothing queued yet.', 'carehook-for-kivicare' ); ?></td></tr>
				<?php endif; ?>
				<?php foreach ( $rows as $r ) : ?>
					<tr>
						<td><?php echo (int) $r['id']; ?></td>
						<td><code><?php echo esc_html( $r['event'] ); ?></code></td>
						<td><?php echo esc_html( $r['record'] ); ?></td>
						<td><?php echo esc_html( $r['status'] ); ?></td>
						<td><?php echo (int) $r['attempts']; ?></td>
						<td><?php echo esc_html( $r['created_at'] ); ?></td>
						<td><?php echo esc_html( 'sent' === $r['status'] ? (string) $r['sent_at'] : ( 'pending' === $r['status'] ? $r['next_attempt_at'] : '' ) ); ?></td>
						<td><?php echo esc_html( (string) $r['last_error'] ); ?></td>
						<td>
						<?php if ( 'sent' !== $r['status'] ) : ?>
							<form method="post" action="<?php echo esc_url( admin_url( 'admin-post.php' ) ); ?>">
								<input type="hidden" name="action" value="carehook_kc_retry">
								<input type="hidden" name="id" value="<?php echo (int) $r['id']; ?>">
								<?php wp_nonce_field( 'carehook_kc_retry' ); ?>
								<button class="button button-small"><?php esc_html_e( 'Retry now', 'carehook-for-kivicare' ); ?></button>
							</form>
						<?php endif; ?>
						</td>
					</tr>
				<?php endforeach; ?>
				</tbody>
			</table>
		</div>
		<?php
	}

	/**
	 * REST twins of the pages (for scripts and monitoring), admin only; and
	 * the drain route the bridge calls on itself after a response.
	 */
	public function routes() {
		$admin = static function () {
			return current_user_can( 'manage_options' );
		};
		register_rest_route(
			'carehook-kivicare/v1',
			'/queue',
			array(
				'methods'             => 'GET',
				'permission_callback' => $admin,
				'callback'            => static function ( WP_REST_Request $r ) {
					return array(
						'counts' => Carehook_KC_Outbox::counts(),
						'items'  => Carehook_KC_Outbox::recent( min( 1000, max( 1, (int) ( $r->get_param( 'limit' ) ?? 100 ) ) ), (string) $r->get_param( 'status' ) ),
					);
				},
			)
		);
		register_rest_route(
			'carehook-kivicare/v1',
			'/queue/retry',
			array(
				'methods'             => 'POST',
				'permission_callback' => $admin,
				'callback'            => static function ( WP_REST_Request $r ) {
					return Carehook_KC_Outbox::retry_now( absint( $r->get_param( 'id' ) ) );
				},
			)
		);
		register_rest_route(
			'carehook-kivicare/v1',
			'/test',
			array(
				'methods'             => 'POST',
				'permission_callback' => $admin,
				'callback'            => static function () {
					return self::send_test();
				},
			)
		);
		register_rest_route(
			'carehook-kivicare/v1',
			'/drain',
			array(
				'methods'             => 'POST',
				'permission_callback' => static function ( WP_REST_Request $r ) {
					return hash_equals( Carehook_KC_Outbox::drain_key(), (string) $r->get_param( 'key' ) );
				},
				'callback'            => static function () {
					ignore_user_abort( true );
					return Carehook_KC_Outbox::drain( 20 );
				},
			)
		);
	}
}
