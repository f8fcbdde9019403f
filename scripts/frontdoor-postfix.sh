#!/bin/sh
# frontdoor-postfix.sh DIR PORT PASSWORD start|stop
#
# Runs a private Postfix (Debian's package; its system service is never started or touched) from its own
# config directory DIR/conf, queue DIR/queue, with an authenticated submission service on
# 127.0.0.1:PORT (STARTTLS with a self-signed certificate, AUTH PLAIN through a private Dovecot auth
# service with one static password). Accepted mail is queued (fsync'd, as Postfix acknowledges) and
# then handed to the discard transport. Must run as root (Postfix's master); everything stays on
# 127.0.0.1 and under DIR. Used by scripts/frontdoor-compare.sh (issue 16).
set -eu
D=$1; PORT=$2; PASS=$3; ACTION=$4
case $ACTION in
stop)
	postfix -c "$D/conf" stop >/dev/null 2>&1 || true
	[ -f "$D/dovecot/run/master.pid" ] && kill "$(cat "$D/dovecot/run/master.pid")" 2>/dev/null || true
	exit 0 ;;
esac
mkdir -p "$D/conf" "$D/queue" "$D/data" "$D/dovecot/run"
chmod 755 "$D" "$D/dovecot" "$D/dovecot/run"
chown postfix "$D/data"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=127.0.0.1 \
	-keyout "$D/conf/key.pem" -out "$D/conf/cert.pem" >/dev/null 2>&1
cat > "$D/dovecot/dovecot.conf" <<EOC
base_dir = $D/dovecot/run
state_dir = $D/dovecot
log_path = $D/dovecot/dovecot.log
protocols =
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {
  driver = static
  args = password=$PASS
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=/nonexistent
}
service auth {
  unix_listener $D/auth {
    mode = 0666
  }
}
service anvil {
  chroot =
}
EOC
/usr/sbin/dovecot -c "$D/dovecot/dovecot.conf"
cat > "$D/conf/main.cf" <<EOC
compatibility_level = 3.6
queue_directory = $D/queue
data_directory = $D/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.test
mydomain = postfix.test
myorigin = postfix.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
relayhost =
default_transport = discard
relay_transport = discard
local_transport = discard
maillog_file_prefixes = $D
maillog_file = $D/maillog
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = $D/auth
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
smtpd_tls_cert_file = $D/conf/cert.pem
smtpd_tls_key_file = $D/conf/key.pem
smtpd_tls_security_level = may
smtpd_tls_auth_only = no
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_connection_count_limit = 0
message_size_limit = 10240000
EOC
grep -v '^#' /etc/postfix/master.cf | grep -v '^[[:space:]]*$' | awk -v port="$PORT" '
	/^smtp[[:space:]]+inet/ { print "127.0.0.1:" port " inet n - n - - smtpd"; next }
	/^[a-z]/ && NF >= 8 { $5 = "n" } { print }' > "$D/conf/master.cf"
postfix -c "$D/conf" check >/dev/null 2>&1 || postfix -c "$D/conf" set-permissions >/dev/null 2>&1 || true
# postfix reports on stderr only to a terminal: script(1) gives it one, so failures are visible
script -qc "postfix -c $D/conf start" /dev/null
