<?php
/**
 * Plugin Name: wpf-bridge companion
 * Description: Gives the wpf-bridge service what core REST lacks: user look-up by Ortto contact id, user meta writes and the new-user email. Holds no business rules.
 * Version: 1.1.0
 *
 * Install as a must-use plugin: save this file as wp-content/mu-plugins/wpf-bridge.php.
 * Every route and field below is reachable only by a user who may already do the same thing
 * in wp-admin (list_users, edit_user, create_users); the bridge decides everything else.
 */

defined( 'ABSPATH' ) || exit;

const WPF_BRIDGE_PLUGIN_VERSION = '1.1.0';

/** Meta keys that grant privileges or hold sessions: never writable through this plugin. */
function wpf_bridge_forbidden_meta( $key ) {
	return (bool) preg_match( '/(^|_)(capabilities|user_level)$|^session_tokens$|^wpf_bridge_notified$/', $key );
}

/** The part of a user the bridge needs to decide what to do. */
function wpf_bridge_user_summary( $user ) {
	if ( ! $user ) {
		return null;
	}
	return array(
		'id'           => $user->ID,
		'username'     => $user->user_login,
		'email'        => $user->user_email,
		'roles'        => array_values( $user->roles ),
		'capabilities' => array_keys( array_filter( $user->allcaps ) ),
		'contact_id'   => (string) get_user_meta( $user->ID, 'ortto_contact_id', true ),
		'delivery_id'  => (string) get_user_meta( $user->ID, 'wpf_bridge_delivery', true ),
		'notified'     => '' !== (string) get_user_meta( $user->ID, 'wpf_bridge_notified', true ),
	);
}

/**
 * A user the bridge creates is written in one database transaction: core REST inserts the user,
 * then its roles, then its meta, so a PHP process killed in between would otherwise leave a user
 * without role or meta, which a retry could not tell from someone else's account. Rolled back on
 * any error; the new-user email waits until the commit, so a rolled-back user was never emailed.
 */
function wpf_bridge_creating( $request ) {
	return 'POST' === $request->get_method() && '/wp/v2/users' === $request->get_route() && isset( $request['wpf_meta'] );
}

$GLOBALS['wpf_bridge_transaction'] = array( 'open' => false, 'notify' => array() );

add_filter(
	'rest_pre_dispatch',
	function ( $result, $server, $request ) {
		global $wpdb;
		if ( null === $result && wpf_bridge_creating( $request ) ) {
			$wpdb->query( 'START TRANSACTION' );
			$GLOBALS['wpf_bridge_transaction']['open'] = true;
		}
		return $result;
	},
	10,
	3
);

add_filter(
	'rest_post_dispatch',
	function ( $response, $server, $request ) {
		global $wpdb;
		$transaction = &$GLOBALS['wpf_bridge_transaction'];
		if ( ! $transaction['open'] ) {
			return $response;
		}
		$transaction['open'] = false;
		if ( $response->is_error() ) {
			$wpdb->query( 'ROLLBACK' );
			return $response;
		}
		$wpdb->query( 'COMMIT' );
		foreach ( $transaction['notify'] as $user_id ) {
			wpf_bridge_notify( $user_id );
		}
		return $response;
	},
	10,
	3
);

/**
 * The new-user email, at most once per user. The mark is written as late as possible, when the
 * message is built and about to be handed to the mailer (phpmailer_init), so a retry after a
 * crash sends it unless that last step had begun: a crash there loses the email, never doubles it.
 */
function wpf_bridge_notify( $user_id ) {
	if ( '' !== (string) get_user_meta( $user_id, 'wpf_bridge_notified', true ) ) {
		return;
	}
	$mark = function () use ( $user_id ) {
		update_user_meta( $user_id, 'wpf_bridge_notified', gmdate( 'c' ) );
	};
	add_action( 'phpmailer_init', $mark );
	wp_new_user_notification( $user_id, null, 'user' );
	remove_action( 'phpmailer_init', $mark );
	$mark();
}

add_action(
	'rest_api_init',
	function () {
		register_rest_route(
			'wpf-bridge/v1',
			'/status',
			array(
				'methods'             => 'GET',
				'permission_callback' => 'is_user_logged_in',
				'callback'            => function () {
					$caps = array();
					foreach ( array( 'list_users', 'create_users', 'edit_users', 'promote_users' ) as $cap ) {
						$caps[ $cap ] = current_user_can( $cap );
					}
					return array(
						'plugin_version'    => WPF_BRIDGE_PLUGIN_VERSION,
						'wordpress_version' => get_bloginfo( 'version' ),
						'user'              => wp_get_current_user()->user_login,
						'capabilities'      => $caps,
						'roles'             => array_keys( wp_roles()->get_names() ),
					);
				},
			)
		);

		register_rest_route(
			'wpf-bridge/v1',
			'/users/lookup',
			array(
				'methods'             => 'GET',
				'permission_callback' => function () {
					return current_user_can( 'list_users' );
				},
				'args'                => array(
					'contact_id' => array( 'type' => 'string', 'default' => '' ),
					'email'      => array( 'type' => 'string', 'default' => '' ),
				),
				'callback'            => function ( WP_REST_Request $request ) {
					$by_contact = null;
					if ( '' !== $request['contact_id'] ) {
						$found      = get_users(
							array(
								'meta_key'   => 'ortto_contact_id',
								'meta_value' => $request['contact_id'],
								'number'     => 1,
								'orderby'    => 'ID',
							)
						);
						$by_contact = $found ? $found[0] : null;
					}
					$by_email = '' !== $request['email'] ? get_user_by( 'email', $request['email'] ) : null;
					return array(
						'by_contact_id' => wpf_bridge_user_summary( $by_contact ),
						'by_email'      => wpf_bridge_user_summary( $by_email ),
					);
				},
			)
		);

		register_rest_field(
			'user',
			'wpf_meta',
			array(
				'schema'          => array(
					'description' => 'User meta to write (null deletes the key).',
					'type'        => 'object',
					'context'     => array( 'edit' ),
				),
				'get_callback'    => null,
				'update_callback' => function ( $meta, $user ) {
					if ( ! current_user_can( 'edit_user', $user->ID ) ) {
						return new WP_Error( 'wpf_bridge_forbidden', 'You may not edit this user.', array( 'status' => 403 ) );
					}
					foreach ( (array) $meta as $key => $value ) {
						if ( wpf_bridge_forbidden_meta( (string) $key ) ) {
							return new WP_Error( 'wpf_bridge_forbidden_meta', "Meta key $key may not be written.", array( 'status' => 400 ) );
						}
					}
					foreach ( (array) $meta as $key => $value ) {
						if ( null === $value ) {
							delete_user_meta( $user->ID, $key );
						} else {
							update_user_meta( $user->ID, $key, $value );
						}
					}
					return true;
				},
			)
		);

		register_rest_field(
			'user',
			'wpf_send_notification',
			array(
				'schema'          => array(
					'description' => 'Send WordPress\'s new-user email now.',
					'type'        => 'boolean',
					'context'     => array( 'edit' ),
				),
				'get_callback'    => null,
				'update_callback' => function ( $send, $user ) {
					if ( ! $send || ! current_user_can( 'edit_user', $user->ID ) ) {
						return true;
					}
					if ( $GLOBALS['wpf_bridge_transaction']['open'] ) {
						$GLOBALS['wpf_bridge_transaction']['notify'][] = $user->ID;
					} else {
						wpf_bridge_notify( $user->ID );
					}
					return true;
				},
			)
		);
	}
);
