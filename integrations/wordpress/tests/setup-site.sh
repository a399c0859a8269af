#!/usr/bin/env bash
# Makes a throwaway WordPress + KiviCare 4.3.0 + carehook-for-kivicare site
# for the end-to-end test (crates/cli/tests/kivicare.rs):
#   setup-site.sh DIR PORT DBNAME KIVICARE_TARBALL CAREHOOK_URL CAREHOOK_TOKEN
# Uses Debian's `wordpress` package (copied with symlinks dereferenced) and the
# MariaDB at 127.0.0.1:3306 (root, empty password); the database DBNAME is
# dropped and made afresh. Prints one JSON line: {"app_password": "..."}.
set -euo pipefail
dir=$1 port=$2 db=$3 tarball=$4 carehook_url=$5 carehook_token=$6
here=$(cd "$(dirname "$0")" && pwd)
plugin="$here/../carehook-for-kivicare"

[[ "$db" =~ ^[A-Za-z0-9_]+$ ]] || { echo "setup-site: bad database name $db" >&2; exit 2; }
rm -rf "$dir/wp"
mkdir -p "$dir"
cp -rL /usr/share/wordpress "$dir/wp"
rm -f "$dir/wp/wp-config.php" "$dir/wp/.htaccess"
tar -xJf "$tarball" -C "$dir/wp/wp-content/plugins"
cp -r "$plugin" "$dir/wp/wp-content/plugins/"

mariadb -h 127.0.0.1 -P 3306 -u root -e "DROP DATABASE IF EXISTS \`$db\`; CREATE DATABASE \`$db\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"

cat > "$dir/wp/wp-config.php" <<PHP
<?php
define( 'DB_NAME', '$db' );
define( 'DB_USER', 'root' );
define( 'DB_PASSWORD', '' );
define( 'DB_HOST', '127.0.0.1:3306' );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );
define( 'WP_HOME', 'http://127.0.0.1:$port' );
define( 'WP_SITEURL', 'http://127.0.0.1:$port' );
define( 'WP_ENVIRONMENT_TYPE', 'local' );
define( 'DISABLE_WP_CRON', true );
define( 'WP_HTTP_BLOCK_EXTERNAL', true );
define( 'AUTOMATIC_UPDATER_DISABLED', true );
define( 'WP_DEBUG', false );
foreach ( array( 'AUTH_KEY', 'SECURE_AUTH_KEY', 'LOGGED_IN_KEY', 'NONCE_KEY', 'AUTH_SALT', 'SECURE_AUTH_SALT', 'LOGGED_IN_SALT', 'NONCE_SALT' ) as \$k ) {
	define( \$k, '$db-' . \$k );
}
\$table_prefix = 'wp_';
if ( ! defined( 'ABSPATH' ) ) {
	define( 'ABSPATH', __DIR__ . '/' );
}
require_once ABSPATH . 'wp-settings.php';
PHP

CAREHOOK_URL="$carehook_url" CAREHOOK_TOKEN="$carehook_token" php -d display_errors=stderr "$here/install.php" "$dir/wp"
