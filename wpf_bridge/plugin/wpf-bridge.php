<?php
/**
 * Plugin Name: wpf-bridge companion
 * Description: Gives the wpf-bridge service what core REST lacks: user look-up by Ortto contact id (with where each user stands on every site of a network), user meta writes, the new-user email, and many look-ups or user writes in one request. Holds no business rules.
 * Version: 1.6.0
 *
 * Install as a must-use plugin: save this file as wp-content/mu-plugins/wpf-bridge.php.
 *
 * Every route and field below is reachable by every logged-in user of the site (anyone may edit
 * their own account and make themselves an application password), so each one checks what a
 * person would need in wp-admin:
 * - /wpf-bridge/v1/status and /wpf-bridge/v1/users/lookup (one person by GET, many by POST): list_users.
 *   On a network, the look-up shows each user's roles and the asked capabilities on every site
 *   (what the bridge needs to leave powerful users alone) to whoever may list users on any site.
 * - /wpf-bridge/v1/users/batch (many core user writes in one request): list_users, create_users and
 *   edit_users; each write is then dispatched to core's /wp/v2/users route as its own request,
 *   so core's permission checks and everything below apply to it, one transaction per user.
 * - the user fields wpf_meta and wpf_send_notification: edit_users and create_users, and never on
 *   one's own account (refused with 403 before WordPress changes anything in the request).
 * - the bridge's own meta (ortto_contact_id, ortto_tags, wpf_bridge_*): only a request signed in
 *   with the application password named "wpf-bridge".
 * - /wpf-bridge/v1/outbox/watch: list_users, create_users, edit_users, promote_users and the
 *   "wpf-bridge" password; the first to ask becomes the bridge's user. /outbox (changes, with personal
 *   data), /outbox/users (the same data), /outbox/ack and /outbox/export: the same, and only that user.
 * Meta keys are an exact lowercase allowlist, so MariaDB's case- and space-blind collation cannot
 * turn "WP_CAPABILITIES " into wp_capabilities. The bridge decides everything else.
 */

defined( 'ABSPATH' ) || exit;

const WPF_BRIDGE_PLUGIN_VERSION = '1.6.0';
const WPF_BRIDGE_MAX_LOOKUPS    = 100; // people per look-up request
const WPF_BRIDGE_MAX_JUDGED     = 100; // capabilities a look-up may ask about
const WPF_BRIDGE_MAX_SITES      = 50; // a network up to this size has every site judged for each user found
const WPF_BRIDGE_MAX_WRITES     = 50; // user writes per batch request
const WPF_BRIDGE_BATCH_SECONDS  = 15; // writes not started by then are answered 503, well before PHP's 30 s limit
const WPF_BRIDGE_CREDENTIAL     = 'wpf-bridge'; // the application password the bridge signs in with
const WPF_BRIDGE_USER_CAPS      = array( 'list_users', 'create_users', 'edit_users', 'promote_users' ); // what the bridge's user holds

/** Meta the bridge keeps for itself: written only by the bridge's credential. */
function wpf_bridge_own_meta( $key ) {
	return in_array( $key, array( 'ortto_contact_id', 'ortto_tags' ), true ) || 0 === strpos( $key, 'wpf_bridge_' );
}

/**
 * Why a meta key may not be written through wpf_meta ('' when it may). Only ^[a-z0-9_]{1,64}$
 * passes, so no case or whitespace variant exists; keys that grant capabilities on any site of a
 * network (a blog prefix need not end in "_"), sessions, WordPress's protected meta ("_...", which
 * holds application passwords) and the email mark this plugin writes itself are refused.
 */
function wpf_bridge_meta_refusal( $key ) {
	$key = is_int( $key ) ? (string) $key : $key; // PHP turns a key like "123" into an integer
	if ( ! is_string( $key ) || ! preg_match( '/^[a-z0-9_]{1,64}$/D', $key ) ) {
		return 'meta keys must match ^[a-z0-9_]{1,64}$';
	}
	if ( preg_match( '/(capabilities|user_level|session_tokens)$/D', $key ) || is_protected_meta( $key, 'user' ) ) {
		return 'it grants privileges, holds sessions or is protected';
	}
	if ( in_array( $key, array( 'wpf_bridge_notified', 'wpf_bridge_unconfirmed_email' ), true ) ) {
		return 'only the plugin writes it';
	}
	if ( wpf_bridge_own_meta( $key ) && ! wpf_bridge_is_bridge() ) {
		return 'only the wpf-bridge application password writes it';
	}
	return '';
}

/** A meta value the bridge writes: text, a list of texts (tags), or null (delete). */
function wpf_bridge_meta_value_ok( $value ) {
	if ( null === $value || is_string( $value ) ) {
		return true;
	}
	if ( ! is_array( $value ) || array_values( $value ) !== $value ) {
		return false;
	}
	foreach ( $value as $item ) {
		if ( ! is_string( $item ) ) {
			return false;
		}
	}
	return true;
}

/** Is this request signed in with the bridge's application password? */
function wpf_bridge_is_bridge() {
	$uuid = rest_get_authenticated_app_password();
	if ( ! $uuid ) {
		return false;
	}
	$password = WP_Application_Passwords::get_user_application_password( get_current_user_id(), $uuid );
	return $password && strtolower( $password['name'] ) === WPF_BRIDGE_CREDENTIAL;
}

/**
 * Why the current user may not use wpf_meta or wpf_send_notification on user $target_id (0: a
 * user being created); null when they may. Managing other users is what these fields are for:
 * they are refused on one's own account, where WordPress would otherwise allow every user.
 */
function wpf_bridge_field_refusal( $target_id ) {
	if ( ! current_user_can( 'edit_users' ) || ! current_user_can( 'create_users' ) ) {
		return new WP_Error( 'wpf_bridge_forbidden', 'Only a user who can create and edit users may use wpf_meta or wpf_send_notification.', array( 'status' => 403 ) );
	}
	if ( $target_id && (int) $target_id === get_current_user_id() ) {
		return new WP_Error( 'wpf_bridge_forbidden', 'wpf_meta and wpf_send_notification may not be used on your own account.', array( 'status' => 403 ) );
	}
	return null;
}

/** Is this a users-controller request that carries our fields? */
function wpf_bridge_users_write( $handler, $request ) {
	$callback = isset( $handler['callback'] ) ? $handler['callback'] : null;
	return is_array( $callback ) && $callback[0] instanceof WP_REST_Users_Controller
		&& ( $request->has_param( 'wpf_meta' ) || $request->has_param( 'wpf_send_notification' ) );
}

/** The user a users-controller request acts on: its id, the current user for /users/me, 0 for a create. */
function wpf_bridge_request_target( $handler, $request ) {
	$method = $handler['callback'][1];
	if ( 'create_item' === $method ) {
		return 0;
	}
	if ( in_array( $method, array( 'get_current_item', 'update_current_item', 'delete_current_item' ), true ) ) {
		return get_current_user_id();
	}
	return (int) $request['id'];
}

/** Refuse the whole request, before WordPress writes anything, when our fields may not be used. */
function wpf_bridge_check_request( $handler, $request ) {
	$refusal = wpf_bridge_field_refusal( wpf_bridge_request_target( $handler, $request ) );
	if ( $refusal ) {
		return $refusal;
	}
	return $request->has_param( 'wpf_meta' ) ? wpf_bridge_meta_error( $request['wpf_meta'] ) : null;
}

/** Why this wpf_meta may not be written (a WP_Error), or null when every key and value may. */
function wpf_bridge_meta_error( $meta ) {
	if ( ! is_array( $meta ) ) {
		return new WP_Error( 'wpf_bridge_bad_meta', 'wpf_meta must be an object.', array( 'status' => 400 ) );
	}
	foreach ( $meta as $key => $value ) {
		$why = wpf_bridge_meta_refusal( $key );
		if ( '' !== $why ) {
			$status = wpf_bridge_own_meta( (string) $key ) ? 403 : 400;
			return new WP_Error( 'wpf_bridge_forbidden_meta', sprintf( 'Meta key %s may not be written: %s.', wp_json_encode( (string) $key ), $why ), array( 'status' => $status ) );
		}
		if ( ! wpf_bridge_meta_value_ok( $value ) ) {
			return new WP_Error( 'wpf_bridge_bad_meta', sprintf( 'Meta %s must be text, a list of texts or null.', $key ), array( 'status' => 400 ) );
		}
	}
	return null;
}

/**
 * The part of a user the bridge needs to decide what to do. $capabilities: the ones the bridge
 * asks about, judged on every site the user stands on (see wpf_bridge_standing).
 */
function wpf_bridge_user_summary( $user, $capabilities ) {
	if ( ! $user ) {
		return null;
	}
	$super_admin = is_multisite() && is_super_admin( $user->ID );
	return array(
		'id'           => $user->ID,
		'username'     => $user->user_login,
		'email'        => $user->user_email,
		'roles'        => array_values( $user->roles ),
		'capabilities' => array_keys( array_filter( $user->allcaps ) ),
		'super_admin'  => $super_admin,
		'sites'        => $super_admin ? array() : wpf_bridge_standing( $user->ID, $capabilities ), // a super admin is never changed
		'contact_id'   => (string) get_user_meta( $user->ID, 'ortto_contact_id', true ),
		'created_for'  => (string) get_user_meta( $user->ID, 'wpf_bridge_created_for', true ),
		'delivery_id'  => (string) get_user_meta( $user->ID, 'wpf_bridge_delivery', true ),
		'notified'     => '' !== (string) get_user_meta( $user->ID, 'wpf_bridge_notified', true ),
		'email_unconfirmed' => strtolower( (string) get_user_meta( $user->ID, 'wpf_bridge_unconfirmed_email', true ) ) === strtolower( $user->user_email ),
	);
}

/**
 * Where a user stands on the current site and, on a network, on every other site they belong to
 * (archived and deactivated ones too) and, on a network of at most WPF_BRIDGE_MAX_SITES sites, on
 * every other site where they hold any of $capabilities without belonging to it: their roles
 * there, which of $capabilities they hold there as WordPress itself answers user_can() on that
 * site (so capabilities that plugins grant at run time count as much as roles do), and the
 * plugins and theme of that site that are not loaded in this request ('unseen': their run-time
 * grants cannot be asked from here). Judged once per user and request.
 */
function wpf_bridge_standing( $user_id, $capabilities ) {
	static $judged = array();
	if ( isset( $judged[ $user_id ] ) ) {
		return $judged[ $user_id ];
	}
	$current = get_current_blog_id();
	$member  = array( $current );
	$others  = array();
	if ( is_multisite() ) {
		$member = array_unique( array_merge( $member, array_map( 'intval', array_keys( get_blogs_of_user( $user_id, true ) ) ) ) );
		$all    = get_sites( array( 'fields' => 'ids', 'number' => WPF_BRIDGE_MAX_SITES + 1 ) );
		$others = count( $all ) <= WPF_BRIDGE_MAX_SITES ? array_diff( array_map( 'intval', $all ), $member ) : array();
	}
	$loaded   = wpf_bridge_loaded_code();
	$standing = array();
	foreach ( array_merge( $member, $others ) as $site ) {
		$switched = $site !== $current;
		if ( $switched ) {
			switch_to_blog( $site );
		}
		$user = new WP_User( $user_id, '', $site );
		$held = array_values( array_filter( $capabilities, function ( $capability ) use ( $user ) {
			return user_can( $user, $capability );
		} ) );
		if ( in_array( $site, $member, true ) || $held ) {
			$unseen     = $switched ? array_values( array_diff( wpf_bridge_loaded_code(), $loaded ) ) : array();
			$standing[] = array( 'site' => $site, 'roles' => array_values( $user->roles ), 'powers' => $held, 'unseen' => $unseen );
		}
		if ( $switched ) {
			restore_current_blog();
		}
	}
	$judged[ $user_id ] = $standing;
	return $standing;
}

/** The plugins and theme that the current site runs: network-activated plugins, its own, its theme. */
function wpf_bridge_loaded_code() {
	$plugins = array_merge( (array) get_option( 'active_plugins', array() ), is_multisite() ? array_keys( (array) get_site_option( 'active_sitewide_plugins', array() ) ) : array() );
	return array_unique( array_merge( $plugins, array( 'theme ' . get_option( 'stylesheet' ), 'theme ' . get_option( 'template' ) ) ) );
}

/**
 * Marks an email a user gave themselves without proving they own it. Over REST (and in some
 * plugins' account pages) anyone can change their own email at once, where wp-admin first mails
 * a confirmation link; such an email must not lead the bridge to someone else's Ortto contact.
 * A change by someone who manages users, or through the confirmation link, clears the mark.
 * The mark is written before the users row changes, so no look-up ever sees the new email unmarked.
 */
add_filter(
	'wp_pre_insert_user_data',
	function ( $data, $update, $user_id ) {
		$old = $update ? get_userdata( $user_id ) : null;
		if ( ! $old || ! isset( $data['user_email'] ) || strtolower( $data['user_email'] ) === strtolower( $old->user_email ) ) {
			return $data;
		}
		$pending   = get_user_meta( $user_id, '_new_email', true );
		$confirmed = isset( $_GET['newuseremail'] ) && is_array( $pending ) && isset( $pending['hash'], $pending['newemail'] )
			&& hash_equals( (string) $pending['hash'], (string) wp_unslash( $_GET['newuseremail'] ) )
			&& strtolower( trim( $pending['newemail'] ) ) === strtolower( $data['user_email'] );
		if ( get_current_user_id() === (int) $user_id && ! current_user_can( 'edit_users' ) && ! $confirmed ) {
			update_user_meta( $user_id, 'wpf_bridge_unconfirmed_email', $data['user_email'] );
		} else {
			delete_user_meta( $user_id, 'wpf_bridge_unconfirmed_email' );
		}
		return $data;
	},
	10,
	3
);

/**
 * What a bridge write asks WordPress to store in the users row. WordPress ignores a failed update
 * of that row (a value too long for its column, say), so the row is read back before the commit.
 */
add_filter(
	'wp_pre_insert_user_data',
	function ( $data ) {
		if ( $GLOBALS['wpf_bridge_transaction']['open'] ) {
			unset( $data['user_activation_key'] ); // WordPress may change it after this filter
			$GLOBALS['wpf_bridge_transaction']['row'] = $data;
		}
		return $data;
	},
	PHP_INT_MAX
);

/** The users-row columns WordPress did not store as asked, for the user the response names. */
function wpf_bridge_unsaved_columns( $response, $row ) {
	global $wpdb;
	$data = $response instanceof WP_REST_Response ? $response->get_data() : null;
	if ( ! $row || ! is_array( $data ) || empty( $data['id'] ) ) {
		return array();
	}
	$stored = $wpdb->get_row( $wpdb->prepare( "SELECT * FROM $wpdb->users WHERE ID = %d", $data['id'] ), ARRAY_A );
	$unsaved = array();
	foreach ( $row as $column => $value ) {
		if ( ! $stored || ! array_key_exists( $column, $stored ) || (string) $stored[ $column ] !== (string) $value ) {
			$unsaved[] = $column;
		}
	}
	return $unsaved;
}

/**
 * A bridge write to a user is one database transaction: core REST inserts or updates the user,
 * then its roles, then its meta, so a PHP process killed in between would otherwise leave a user
 * without role or meta, which a retry could not tell from someone else's account. Rolled back on
 * any error; the new-user email waits until the commit, so a rolled-back user was never emailed.
 *
 * WordPress ignores most failed queries, and InnoDB ends a transaction it picks as a deadlock
 * victim; with autocommit on, the statements after it would then be saved one by one. So
 * autocommit is off for the request (a statement after a deadlock opens a new transaction, rolled
 * back with the rest), and any database error during the write ($EZSQL_ERROR, where wpdb records
 * each one) rolls everything back and answers 503, for the bridge to try again.
 */
function wpf_bridge_database_errors() {
	return isset( $GLOBALS['EZSQL_ERROR'] ) ? count( (array) $GLOBALS['EZSQL_ERROR'] ) : 0;
}

/** A transaction's state: open or not, emails to send after the commit, errors seen before it, users row asked for, users written; whether it is core's own create, whether it took core's user count refresh, whether a user registered. */
function wpf_bridge_transaction( $open, $core_create = false ) {
	return array(
		'open'        => $open,
		'notify'      => array(),
		'errors'      => wpf_bridge_database_errors(),
		'row'         => null,
		'users'       => array(),
		'core_create' => $core_create,
		'counts'      => false,
		'registered'  => false,
	);
}

/** Note each user a transaction writes, so that a rollback also drops them from the object cache. */
function wpf_bridge_touched( $user_id ) {
	if ( $GLOBALS['wpf_bridge_transaction']['open'] ) {
		$GLOBALS['wpf_bridge_transaction']['users'][] = (int) $user_id;
	}
}
add_action( 'user_register', 'wpf_bridge_touched' );
add_action( 'profile_update', 'wpf_bridge_touched' );

$GLOBALS['wpf_bridge_transaction'] = wpf_bridge_transaction( false );

/**
 * Two rows every new user would otherwise lock until its transaction commits, making creates that
 * run side by side wait for one another and deadlock in InnoDB (every run of four 50-user batches
 * at once, with 1.4.0):
 * - the role: core's users route inserts the user with no role, then add_role() UPDATEs
 *   wp_capabilities, which MariaDB runs on the meta_key index. On a single site, for core's own
 *   route (whose schema has roles, and which has checked them: check_role_update), the one role
 *   asked for is set as the users row is written instead, as wp-admin's Add New User does;
 *   add_role() then finds it and writes nothing. On a network core empties the roles again
 *   (add_user_to_blog), so it is left to core there.
 * - the site's user count (one wp_options row, refreshed by core on user_register when the site
 *   keeps that hook): refreshed right after the commit instead.
 */
add_filter(
	'rest_pre_insert_user',
	function ( $prepared_user, $request ) {
		$roles = $request['roles'];
		if ( $GLOBALS['wpf_bridge_transaction']['core_create'] && ! is_multisite() && false === $prepared_user->role
			&& is_array( $roles ) && 1 === count( $roles ) ) {
			$prepared_user->role = (string) reset( $roles );
		}
		return $prepared_user;
	},
	PHP_INT_MAX,
	2
);

/** Take core's user count refresh out of the transaction, if the site keeps it. */
function wpf_bridge_defer_counts() {
	if ( 10 === has_action( 'user_register', 'wp_maybe_update_user_counts' ) ) {
		remove_action( 'user_register', 'wp_maybe_update_user_counts', 10 );
		$GLOBALS['wpf_bridge_transaction']['counts'] = true;
	}
}

/** After the transaction: core's refresh back in place, and run once if the write registered a user. */
function wpf_bridge_refresh_counts( $transaction ) {
	if ( $transaction['counts'] ) {
		add_action( 'user_register', 'wp_maybe_update_user_counts', 10, 0 );
		if ( $transaction['registered'] ) {
			wp_maybe_update_user_counts();
		}
	}
}
add_action(
	'user_register',
	function () {
		$GLOBALS['wpf_bridge_transaction']['registered'] = true;
	}
);

add_filter(
	'rest_request_before_callbacks',
	function ( $response, $handler, $request ) {
		global $wpdb;
		if ( is_wp_error( $response ) || ! wpf_bridge_users_write( $handler, $request ) ) {
			return $response;
		}
		$refusal = wpf_bridge_check_request( $handler, $request );
		if ( $refusal ) {
			return $refusal;
		}
		$wpdb->query( 'SET autocommit = 0' );
		$wpdb->query( 'START TRANSACTION' );
		$controller  = $handler['callback'][0];
		$schema      = $controller->get_item_schema();
		$core_create = 'create_item' === $handler['callback'][1] && 'WP_REST_Users_Controller' === get_class( $controller )
			&& ! empty( $schema['properties']['roles'] ); // core checks the roles asked for (check_role_update) only then
		$GLOBALS['wpf_bridge_transaction'] = wpf_bridge_transaction( true, $core_create );
		wpf_bridge_defer_counts();
		return $response;
	},
	10,
	3
);

add_filter(
	'rest_request_after_callbacks',
	function ( $response, $handler, $request ) {
		global $wpdb;
		$transaction = $GLOBALS['wpf_bridge_transaction'];
		if ( ! $transaction['open'] ) {
			return $response;
		}
		$GLOBALS['wpf_bridge_transaction'] = wpf_bridge_transaction( false );
		$failed_query = wpf_bridge_database_errors() > $transaction['errors'];
		$refused      = is_wp_error( $response ) || ( $response instanceof WP_HTTP_Response && $response->is_error() );
		$unsaved      = $failed_query || $refused ? array() : wpf_bridge_unsaved_columns( $response, $transaction['row'] );
		if ( $failed_query || $refused || $unsaved ) {
			$wpdb->query( 'ROLLBACK' );
			$wpdb->query( 'SET autocommit = 1' );
			wpf_bridge_refresh_counts( $transaction );
			$data  = $response instanceof WP_REST_Response ? $response->get_data() : null;
			$users = $transaction['users'];
			if ( is_array( $data ) && ! empty( $data['id'] ) ) {
				$users[] = (int) $data['id'];
			}
			foreach ( array_unique( $users ) as $user_id ) {
				clean_user_cache( $user_id ); // the object cache (persistent or for the rest of a batch) may hold what was rolled back
			}
			if ( $failed_query ) {
				return new WP_Error( 'wpf_bridge_database_error', 'A database query failed during the write (a deadlock, say), so nothing was saved; try again.', array( 'status' => 503 ) );
			}
			if ( $unsaved ) {
				return new WP_Error( 'wpf_bridge_not_saved', sprintf( 'WordPress did not store %s (too long or invalid for its column), so nothing was saved.', implode( ', ', $unsaved ) ), array( 'status' => 400 ) );
			}
			return $response;
		}
		$wpdb->query( 'COMMIT' );
		$wpdb->query( 'SET autocommit = 1' );
		wpf_bridge_refresh_counts( $transaction );
		foreach ( $transaction['notify'] as $user_id ) {
			wpf_bridge_notify( $user_id );
		}
		return $response;
	},
	10,
	3
);

/**
 * A write that dies of a PHP error (core's create crashes when a deadlock rolled its new user
 * back) is rolled back by MariaDB as the connection closes; say so, as for a failed query,
 * instead of WordPress's "critical error" page.
 */
add_filter(
	'wp_php_error_args',
	function ( $args ) {
		if ( $GLOBALS['wpf_bridge_transaction']['open'] ) {
			$args['response'] = 503;
			$args['code']     = 'wpf_bridge_database_error';
		}
		return $args;
	}
);
add_filter(
	'wp_php_error_message',
	function ( $message ) {
		return $GLOBALS['wpf_bridge_transaction']['open'] ? 'WordPress failed during a user write (after a database deadlock, say), so that write was not saved; try again.' : $message;
	}
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

/**
 * The users holding each person's contact id and email ('' looks up nobody), as the bridge sees
 * them, in two queries for the whole list: the contact id is matched in wp_usermeta, whose
 * meta_value has no index, so a query reads every user's ortto_contact_id row (22 ms at 3,000
 * users); one IN (...) reads them once for all. MariaDB compares under the tables' collation, which
 * ignores case, accents and trailing spaces (admin@vìctim.com would find admin@victim.com), so
 * only exact matches are kept: case included for contact ids, case aside for emails; the lowest
 * user id wins. Each user found is judged on $capabilities (wpf_bridge_user_summary).
 */
function wpf_bridge_lookup_many( $people, $capabilities ) {
	global $wpdb;
	$ids    = array();
	$emails = array();
	foreach ( $people as $person ) {
		$ids[]    = (string) ( $person['contact_id'] ?? '' );
		$emails[] = (string) ( $person['email'] ?? '' );
	}
	$by_id    = wpf_bridge_first_exact( "SELECT user_id AS id, meta_value AS value FROM $wpdb->usermeta WHERE meta_key = 'ortto_contact_id' AND meta_value IN (%s) ORDER BY user_id", $ids, false );
	$by_email = wpf_bridge_first_exact( "SELECT ID AS id, user_email AS value FROM $wpdb->users WHERE user_email IN (%s) ORDER BY ID", $emails, true );
	$results  = array();
	foreach ( $ids as $n => $id ) {
		$email     = strtolower( $emails[ $n ] );
		$results[] = array(
			'by_contact_id' => wpf_bridge_user_summary( isset( $by_id[ $id ] ) ? get_userdata( $by_id[ $id ] ) : null, $capabilities ),
			'by_email'      => wpf_bridge_user_summary( isset( $by_email[ $email ] ) ? get_userdata( $by_email[ $email ] ) : null, $capabilities ),
		);
	}
	return $results;
}

/** For each wanted value ('' wants nothing), the lowest id whose value is exactly it (case aside for emails). */
function wpf_bridge_first_exact( $query, $wanted, $caseless ) {
	global $wpdb;
	$wanted = array_values( array_unique( array_filter( $wanted, 'strlen' ) ) );
	if ( ! $wanted ) {
		return array();
	}
	$key   = $caseless ? 'strtolower' : 'strval';
	$exact = array_flip( array_map( $key, $wanted ) );
	$rows  = $wpdb->get_results( $wpdb->prepare( str_replace( '%s', implode( ', ', array_fill( 0, count( $wanted ), '%s' ) ), $query ), $wanted ) );
	$first = array();
	foreach ( $rows as $row ) {
		$value = $key( (string) $row->value );
		if ( isset( $exact[ $value ] ) && ! isset( $first[ $value ] ) ) {
			$first[ $value ] = (int) $row->id;
		}
	}
	cache_users( array_values( $first ) ); // their rows and meta in two queries, for the summaries
	return $first;
}

/**
 * Many user writes in one request, each dispatched in turn to core's users route as a request of
 * its own (create: no "user"; update: "user" is the id), so each is checked, written in its own
 * transaction and emailed exactly as if it had come alone; one refused write does not stop the
 * others. Each answer is {status, body} as the write alone would have been answered. Writes not
 * started within WPF_BRIDGE_BATCH_SECONDS are answered 503 without running, to be sent again.
 */
function wpf_bridge_batch( WP_REST_Request $request ) {
	$server    = rest_get_server();
	$started   = microtime( true );
	$responses = array();
	foreach ( $request['writes'] as $write ) {
		if ( microtime( true ) - $started > WPF_BRIDGE_BATCH_SECONDS ) {
			$responses[] = array(
				'status' => 503,
				'body'   => array( 'code' => 'wpf_bridge_batch_time', 'message' => 'Not run: the batch ran out of time; send this write again.' ),
			);
			continue;
		}
		$route  = isset( $write['user'] ) ? '/wp/v2/users/' . (int) $write['user'] : '/wp/v2/users';
		$single = new WP_REST_Request( 'POST', $route );
		$single->set_body_params( (array) $write['values'] );
		$response = rest_do_request( $single ); // another plugin's rest_pre_dispatch may answer with anything
		$response = is_wp_error( $response ) ? rest_convert_error_to_response( $response ) : rest_ensure_response( $response );
		$responses[] = array(
			'status' => $response->get_status(),
			'body'   => $server->response_to_data( $response, false ),
		);
	}
	return array( 'responses' => $responses );
}

add_action(
	'rest_api_init',
	function () {
		$can_list_users = function () {
			return current_user_can( 'list_users' );
		};
		$judged         = array( // the capabilities the bridge asks about each user found (GET: comma-separated)
			'type'     => 'array',
			'default'  => array(),
			'maxItems' => WPF_BRIDGE_MAX_JUDGED,
			'items'    => array( 'type' => 'string', 'pattern' => '^[a-z0-9_]{1,64}$' ),
		);

		register_rest_route(
			'wpf-bridge/v1',
			'/status',
			array(
				'methods'             => 'GET',
				'permission_callback' => $can_list_users,
				'callback'            => function () {
					$caps = array();
					foreach ( WPF_BRIDGE_USER_CAPS as $cap ) {
						$caps[ $cap ] = current_user_can( $cap );
					}
					$roles = array();
					foreach ( wp_roles()->roles as $name => $role ) {
						$roles[ $name ] = array_keys( array_filter( (array) $role['capabilities'] ) );
					}
					return array(
						'plugin_version'    => WPF_BRIDGE_PLUGIN_VERSION,
						'wordpress_version' => get_bloginfo( 'version' ),
						'multisite'         => is_multisite(),
						'user'              => wp_get_current_user()->user_login,
						'bridge_credential' => wpf_bridge_is_bridge(),
						'capabilities'      => $caps,
						'roles'             => (object) $roles,
					);
				},
			)
		);

		register_rest_route(
			'wpf-bridge/v1',
			'/users/lookup',
			array(
				'methods'             => 'GET',
				'permission_callback' => $can_list_users,
				'args'                => array(
					'contact_id'   => array( 'type' => 'string', 'default' => '' ),
					'email'        => array( 'type' => 'string', 'default' => '' ),
					'capabilities' => $judged,
				),
				'callback'            => function ( WP_REST_Request $request ) {
					$person = array( 'contact_id' => $request['contact_id'], 'email' => $request['email'] );
					return wpf_bridge_lookup_many( array( $person ), $request['capabilities'] )[0];
				},
			)
		);

		register_rest_route(
			'wpf-bridge/v1',
			'/users/lookup',
			array(
				'methods'             => 'POST',
				'permission_callback' => $can_list_users,
				'args'                => array(
					'people' => array(
						'type'     => 'array',
						'required' => true,
						'maxItems' => WPF_BRIDGE_MAX_LOOKUPS,
						'items'    => array(
							'type'                 => 'object',
							'properties'           => array(
								'contact_id' => array( 'type' => 'string' ),
								'email'      => array( 'type' => 'string' ),
							),
							'additionalProperties' => false,
						),
					),
					'capabilities' => $judged,
				),
				'callback'            => function ( WP_REST_Request $request ) {
					return array( 'results' => wpf_bridge_lookup_many( $request['people'], $request['capabilities'] ) );
				},
			)
		);

		register_rest_route(
			'wpf-bridge/v1',
			'/users/batch',
			array(
				'methods'             => 'POST',
				'permission_callback' => function () {
					return current_user_can( 'list_users' ) && current_user_can( 'create_users' ) && current_user_can( 'edit_users' );
				},
				'args'                => array(
					'writes' => array(
						'type'     => 'array',
						'required' => true,
						'maxItems' => WPF_BRIDGE_MAX_WRITES,
						'items'    => array(
							'type'                 => 'object',
							'properties'           => array(
								'user'   => array( 'type' => 'integer', 'minimum' => 1, 'maximum' => PHP_INT_MAX ),
								'values' => array( 'type' => 'object' ),
							),
							'required'             => array( 'values' ),
							'additionalProperties' => false,
						),
					),
				),
				'callback'            => 'wpf_bridge_batch',
			)
		);

		register_rest_field(
			'user',
			'wpf_meta',
			array(
				'schema'          => array(
					'description' => 'User meta to write (null deletes the key). Needs edit_users and create_users; never on your own account.',
					'type'        => 'object',
					'context'     => array( 'edit' ),
				),
				'get_callback'    => null,
				'update_callback' => function ( $meta, $user ) {
					// Checked with the whole request before WordPress wrote anything; again here, at the write.
					$refusal = wpf_bridge_field_refusal( $user->ID );
					if ( $refusal ) {
						return $refusal;
					}
					$refusal = wpf_bridge_meta_error( $meta );
					if ( $refusal ) {
						return $refusal;
					}
					foreach ( $meta as $key => $value ) {
						if ( null === $value ) {
							delete_user_meta( $user->ID, $key );
						} else {
							update_user_meta( $user->ID, $key, wp_slash( $value ) ); // core unslashes what it is given
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
					'description' => 'Send WordPress\'s new-user email now. Needs edit_users and create_users; never on your own account.',
					'type'        => 'boolean',
					'context'     => array( 'edit' ),
				),
				'get_callback'    => null,
				'update_callback' => function ( $send, $user ) {
					$refusal = wpf_bridge_field_refusal( $user->ID );
					if ( $refusal ) {
						return $refusal;
					}
					if ( ! $send ) {
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

/*
 * The outbox: changes to users that the bridge pushes to Ortto (WordPress -> Ortto). Each hook
 * that sees a change writes a row on WordPress's own database connection, so inside the change's
 * transaction wherever it runs in one. A row names a user and a kind of change (new, profile,
 * roles; export, asked by `wpf-bridge export` for users who were there before), never a value: the
 * bridge reads the user when it pulls, and decides what Ortto gets.
 * One row per user and kind (a newer change REPLACEs the older row, with a new id), so the table
 * holds at most four rows a user however long the bridge is away. Users belong to the whole
 * network, so the table and what it records are the network's: a change made on any site counts.
 * Nothing is recorded until the bridge says what it pushes (/outbox/watch, which also names the
 * bridge's user), nor for a change that user made with the wpf-bridge credential (it came from
 * Ortto: pushing it back would echo).
 */

const WPF_BRIDGE_OUTBOX_PAGE   = 500; // changes per pull at most
const WPF_BRIDGE_OUTBOX_FIELDS = array( 'user_email', 'display_name', 'user_url', 'user_nicename' ); // users-row columns one may watch

function wpf_bridge_outbox_table() {
	global $wpdb;
	return $wpdb->base_prefix . 'wpf_bridge_outbox';
}

/** What the bridge pushes: {user: the bridge's user, new, roles: bool, fields: columns, meta: keys}; null before it said. */
function wpf_bridge_watched() {
	$watched = get_site_option( 'wpf_bridge_watch' );
	return is_array( $watched ) ? $watched : null;
}

/** Is this request the bridge's own: its user, signed in with the wpf-bridge credential? */
function wpf_bridge_is_outbox_bridge( $watched ) {
	return $watched && get_current_user_id() === (int) $watched['user'] && wpf_bridge_is_bridge();
}

/** Does the outbox table exist (asked once per request; a restored or copied site may lack it)? */
function wpf_bridge_outbox_exists( $again = false ) {
	global $wpdb;
	static $exists = null;
	if ( null === $exists || $again ) {
		$table  = wpf_bridge_outbox_table();
		$exists = $wpdb->get_var( $wpdb->prepare( 'SHOW TABLES LIKE %s', $wpdb->esc_like( $table ) ) ) === $table;
	}
	return $exists;
}

/**
 * Users wp_insert_user is making in this request, between their row and user_register: their meta and
 * role travel with the 'new' row (read when the bridge pulls it), so they cost no row of their own.
 */
function wpf_bridge_inserting( $user_id, $inserting = null ) {
	static $ids = array();
	if ( null !== $inserting ) {
		$ids[ (int) $user_id ] = $inserting;
	}
	return ! empty( $ids[ (int) $user_id ] );
}

add_filter(
	'insert_user_meta',
	function ( $meta, $user, $update ) {
		if ( ! $update && $user instanceof WP_User ) {
			wpf_bridge_inserting( $user->ID, true );
		}
		return $meta;
	},
	10,
	3
);

/** Record that user $user_id changed in a way of $kind, if the bridge pushes that and did not make the change. */
function wpf_bridge_record( $user_id, $kind ) {
	global $wpdb;
	$watched = wpf_bridge_watched();
	if ( ! $watched || ! $user_id || wpf_bridge_is_outbox_bridge( $watched ) ) {
		return;
	}
	if ( 'new' === $kind ) {
		wpf_bridge_inserting( $user_id, false );
	} elseif ( wpf_bridge_inserting( $user_id ) ) {
		return;
	}
	if ( ( 'new' === $kind && empty( $watched['new'] ) ) || ( 'roles' === $kind && empty( $watched['roles'] ) ) ) {
		return;
	}
	if ( wpf_bridge_outbox_exists() ) { // a failed query would roll back the change it records (wpf_bridge_transaction)
		$wpdb->replace( wpf_bridge_outbox_table(), array( 'user_id' => (int) $user_id, 'kind' => $kind, 'changed_at' => gmdate( 'Y-m-d H:i:s' ) ) );
	}
}

add_action(
	'user_register',
	function ( $user_id ) {
		wpf_bridge_record( $user_id, 'new' );
	},
	1
);
add_action(
	'profile_update',
	function ( $user_id, $old ) {
		$watched = wpf_bridge_watched();
		$now     = get_userdata( $user_id );
		if ( ! $watched || ! $now || ! $old instanceof WP_User ) {
			return;
		}
		foreach ( (array) $watched['fields'] as $column ) {
			if ( (string) $now->get( $column ) !== (string) $old->get( $column ) ) {
				wpf_bridge_record( $user_id, 'profile' );
				return;
			}
		}
	},
	10,
	2
);
foreach ( array( 'added_user_meta', 'updated_user_meta', 'deleted_user_meta' ) as $wpf_bridge_meta_change ) {
	add_action(
		$wpf_bridge_meta_change,
		function ( $meta_id, $user_id, $key ) {
			$watched = wpf_bridge_watched();
			if ( $watched && in_array( $key, (array) $watched['meta'], true ) ) {
				wpf_bridge_record( $user_id, 'profile' );
			}
		},
		10,
		3
	);
}
// Roles given or taken, and a user added to or removed from a site (no role hook fires then).
foreach ( array( 'set_user_role', 'add_user_role', 'remove_user_role', 'add_user_to_blog', 'remove_user_from_blog' ) as $wpf_bridge_role_change ) {
	add_action(
		$wpf_bridge_role_change,
		function ( $user_id ) {
			wpf_bridge_record( $user_id, 'roles' );
		}
	);
}

/** Create the outbox table when it is missing (dbDelta); whether it exists now. */
function wpf_bridge_outbox_install() {
	global $wpdb;
	if ( wpf_bridge_outbox_exists( true ) ) {
		return true;
	}
	require_once ABSPATH . 'wp-admin/includes/upgrade.php';
	$table = wpf_bridge_outbox_table();
	dbDelta(
		"CREATE TABLE $table (
		id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
		user_id bigint(20) unsigned NOT NULL,
		kind varchar(20) NOT NULL,
		changed_at datetime NOT NULL,
		PRIMARY KEY  (id),
		UNIQUE KEY user_kind (user_id,kind)
		) {$wpdb->get_charset_collate()};"
	);
	return wpf_bridge_outbox_exists( true );
}

/** Why the bridge may not watch these columns and meta keys (a WP_Error), or null. */
function wpf_bridge_watch_refusal( $fields, $meta ) {
	foreach ( $fields as $column ) {
		if ( ! in_array( $column, WPF_BRIDGE_OUTBOX_FIELDS, true ) ) {
			return new WP_Error( 'wpf_bridge_watch', sprintf( 'The column %s may not be watched (only %s).', wp_json_encode( $column ), implode( ', ', WPF_BRIDGE_OUTBOX_FIELDS ) ), array( 'status' => 400 ) );
		}
	}
	foreach ( $meta as $key ) {
		$why = wpf_bridge_meta_refusal( $key ); // what may not be written through wpf_meta may not be read through the outbox
		if ( $why ) {
			return new WP_Error( 'wpf_bridge_watch', sprintf( 'The meta key %s may not be watched: %s.', wp_json_encode( $key ), $why ), array( 'status' => 400 ) );
		}
	}
	return null;
}

/** A user as the bridge pushes them: the watched columns and meta, roles, and its own marks; never a password. */
function wpf_bridge_outbox_user( $user_id, $watched ) {
	$user = get_userdata( $user_id );
	if ( ! $user ) {
		return null;
	}
	$fields = array();
	foreach ( (array) $watched['fields'] as $column ) {
		$fields[ $column ] = (string) $user->get( $column );
	}
	$meta = array();
	foreach ( array_merge( (array) $watched['meta'], array( 'ortto_contact_id', 'wpf_bridge_created_for', 'wpf_bridge_unconfirmed_email' ) ) as $key ) {
		$meta[ $key ] = get_user_meta( $user_id, $key, true );
	}
	return array(
		'id'     => (int) $user_id,
		'email'  => $user->user_email,
		'roles'  => array_values( $user->roles ),
		'fields' => (object) $fields,
		'meta'   => (object) $meta,
	);
}

add_action(
	'rest_api_init',
	function () {
		$may_manage = function () { // what the bridge's user holds (check asks for the same)
			foreach ( WPF_BRIDGE_USER_CAPS as $cap ) {
				if ( ! current_user_can( $cap ) ) {
					return false;
				}
			}
			return wpf_bridge_is_bridge();
		};
		$bridge_only = function () use ( $may_manage ) { // personal data, and acknowledging loses changes
			return $may_manage() && wpf_bridge_is_outbox_bridge( wpf_bridge_watched() );
		};
		$names       = array( 'type' => 'array', 'default' => array(), 'maxItems' => 200, 'items' => array( 'type' => 'string' ) );
		$ids         = array( 'type' => 'array', 'required' => true, 'maxItems' => WPF_BRIDGE_OUTBOX_PAGE, 'items' => array( 'type' => 'integer', 'minimum' => 1 ) ); // outbox rows or users

		register_rest_route(
			'wpf-bridge/v1',
			'/outbox/watch',
			array(
				'methods'             => 'POST',
				'permission_callback' => function () use ( $may_manage ) {
					// the first to ask names the bridge's user; then only that user, while it may still manage users
					$watched = wpf_bridge_watched();
					$owner   = $watched ? (int) $watched['user'] : 0;
					return $may_manage() && ( ! $owner || get_current_user_id() === $owner || ! user_can( $owner, 'promote_users' ) );
				},
				'args'                => array(
					'new'    => array( 'type' => 'boolean', 'required' => true ),
					'roles'  => array( 'type' => 'boolean', 'required' => true ),
					'fields' => $names,
					'meta'   => $names,
				),
				'callback'            => function ( WP_REST_Request $request ) {
					$refusal = wpf_bridge_watch_refusal( $request['fields'], $request['meta'] );
					if ( $refusal ) {
						return $refusal;
					}
					if ( ! wpf_bridge_outbox_install() ) {
						return new WP_Error( 'wpf_bridge_outbox_table', 'WordPress could not create the outbox table; nothing can be recorded.', array( 'status' => 500 ) );
					}
					$watched = array(
						'user'   => get_current_user_id(),
						'new'    => (bool) $request['new'],
						'roles'  => (bool) $request['roles'],
						'fields' => array_values( array_unique( $request['fields'] ) ),
						'meta'   => array_values( array_unique( $request['meta'] ) ),
					);
					update_site_option( 'wpf_bridge_watch', $watched );
					return $watched;
				},
			)
		);

		register_rest_route(
			'wpf-bridge/v1',
			'/outbox',
			array(
				'methods'             => 'GET',
				'permission_callback' => $bridge_only,
				'args'                => array(
					'limit' => array( 'type' => 'integer', 'minimum' => 1, 'maximum' => WPF_BRIDGE_OUTBOX_PAGE, 'default' => 100 ),
				),
				'callback'            => function ( WP_REST_Request $request ) {
					global $wpdb;
					$watched = wpf_bridge_watched();
					if ( ! wpf_bridge_outbox_exists() ) {
						return new WP_Error( 'wpf_bridge_outbox_table', 'The outbox table is missing; the bridge creates it again with /outbox/watch.', array( 'status' => 409 ) );
					}
					$table   = wpf_bridge_outbox_table();
					$rows    = $wpdb->get_results( $wpdb->prepare( "SELECT id, user_id, kind, changed_at FROM $table ORDER BY id LIMIT %d", $request['limit'] ) );
					cache_users( array_map( 'intval', wp_list_pluck( $rows, 'user_id' ) ) ); // the page's users and meta in two queries
					$changes = array();
					foreach ( $rows as $row ) {
						$changes[] = array(
							'id'         => (int) $row->id,
							'kind'       => $row->kind,
							'changed_at' => $row->changed_at . 'Z',
							'user'       => wpf_bridge_outbox_user( (int) $row->user_id, $watched ),
							'user_id'    => (int) $row->user_id,
						);
					}
					$oldest = $wpdb->get_var( "SELECT MIN(changed_at) FROM $table" );
					return array(
						'changes' => $changes,
						'behind'  => (int) $wpdb->get_var( "SELECT COUNT(*) FROM $table" ),
						'oldest'  => $oldest ? $oldest . 'Z' : null,
					);
				},
			)
		);

		register_rest_route(
			'wpf-bridge/v1',
			'/outbox/ack',
			array(
				'methods'             => 'POST',
				'permission_callback' => $bridge_only,
				'args'                => array( 'ids' => $ids ),
				'callback'            => function ( WP_REST_Request $request ) {
					global $wpdb;
					$ids = array_map( 'intval', $request['ids'] );
					if ( ! $ids || ! wpf_bridge_outbox_exists() ) {
						return array( 'removed' => 0 );
					}
					$table = wpf_bridge_outbox_table();
					$in    = implode( ', ', array_fill( 0, count( $ids ), '%d' ) );
					return array( 'removed' => (int) $wpdb->query( $wpdb->prepare( "DELETE FROM $table WHERE id IN ($in)", $ids ) ) );
				},
			)
		);

		register_rest_route(
			'wpf-bridge/v1',
			'/outbox/users',
			array(
				'methods'             => 'GET',
				'permission_callback' => $bridge_only,
				'args'                => array( 'ids' => $ids ),
				'callback'            => function ( WP_REST_Request $request ) {
					// The users as they are now, as a pull gives them: the bridge pushes what is current, whenever
					// (and by whichever worker) the change was pulled.
					$ids     = array_map( 'intval', $request['ids'] );
					$watched = wpf_bridge_watched();
					cache_users( $ids );
					return array( 'users' => array_map( fn( $id ) => wpf_bridge_outbox_user( $id, $watched ), $ids ) );
				},
			)
		);

		register_rest_route(
			'wpf-bridge/v1',
			'/outbox/export',
			array(
				'methods'             => 'POST',
				'permission_callback' => $bridge_only,
				'args'                => array(
					'after'   => array( 'type' => 'integer', 'minimum' => 0, 'default' => 0 ),
					'limit'   => array( 'type' => 'integer', 'minimum' => 1, 'maximum' => WPF_BRIDGE_OUTBOX_PAGE, 'default' => WPF_BRIDGE_OUTBOX_PAGE ),
					'role'    => array( 'type' => 'string', 'default' => '', 'pattern' => '^[a-z0-9_-]{0,64}$' ),
					'dry_run' => array( 'type' => 'boolean', 'default' => false ),
				),
				'callback'            => function ( WP_REST_Request $request ) {
					// Existing users, a page at a time by id: each not yet linked to an Ortto person (and not made by
					// the bridge) is recorded as an 'export' change, which the bridge pulls and pushes like the rest.
					global $wpdb;
					$after = (int) $request['after'];
					$where = function ( $query ) use ( $after ) {
						global $wpdb;
						$query->query_where .= $wpdb->prepare( " AND {$wpdb->users}.ID > %d", $after );
					};
					$args  = array( 'fields' => 'ID', 'orderby' => 'ID', 'order' => 'ASC', 'number' => $request['limit'], 'count_total' => false );
					if ( '' !== $request['role'] ) {
						$args['role'] = $request['role']; // a role is a site's: this site's users who hold it
					} elseif ( is_multisite() ) {
						$args['blog_id'] = 0; // every user of the network, as the outbox records changes on every site
					}
					add_action( 'pre_user_query', $where );
					$ids = array_map( 'intval', ( new WP_User_Query( $args ) )->get_results() );
					remove_action( 'pre_user_query', $where );
					cache_users( $ids );
					$export = array();
					$bridge = (int) wpf_bridge_watched()['user']; // the bridge's own account is nobody's contact
					foreach ( $ids as $id ) {
						if ( $id !== $bridge && '' === (string) get_user_meta( $id, 'ortto_contact_id', true ) && '' === (string) get_user_meta( $id, 'wpf_bridge_created_for', true ) ) {
							$export[] = $id;
						}
					}
					if ( ! $request['dry_run'] && $export ) {
						if ( ! wpf_bridge_outbox_exists() ) {
							return new WP_Error( 'wpf_bridge_outbox_table', 'The outbox table is missing; the bridge creates it again with /outbox/watch.', array( 'status' => 409 ) );
						}
						foreach ( $export as $id ) {
							$wpdb->replace( wpf_bridge_outbox_table(), array( 'user_id' => $id, 'kind' => 'export', 'changed_at' => gmdate( 'Y-m-d H:i:s' ) ) );
						}
					}
					return array(
						'users'  => count( $ids ),
						'export' => count( $export ),
						'last'   => $ids ? end( $ids ) : $after,
						'more'   => count( $ids ) === (int) $request['limit'],
					);
				},
			)
		);
	}
);
