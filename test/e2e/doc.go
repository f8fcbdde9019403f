// Package e2e holds end-to-end tests: real nodes (internal/node, started in the test process on the
// development network, peered over 127.0.0.1 with mDNS and the DHT off) driven by real, independent
// mail clients through os/exec, exactly as a user's clients would reach them: SMTP submission and IMAP
// on 127.0.0.1 with STARTTLS, the node's self-signed certificate trusted from its data directory, and
// the node's generated password. Mail crosses the tangle with real proof of work.
//
// What is covered:
//   - swaks (TestSwaksSubmission): STARTTLS with certificate verification, AUTH PLAIN, submission from
//     alice to bob; the mail reaches bob's INBOX and alice's Sent, and bob's automatic receipt marks
//     alice's outbox recipient delivered.
//   - swaks (TestSwaksBadAddress): a recipient outside @tangle and a tangle address with a bad bech32m
//     checksum are refused at RCPT TO with 550 5.1.1 and the reason in words; nothing is queued.
//   - Python's smtplib and imaplib (TestPythonSMTPAndIMAPIdle): both directions, alice→bob and
//     bob→alice; the recipient's imaplib (STARTTLS, LOGIN, SELECT INBOX, IDLE written by hand, since
//     imaplib in Python 3.11 has no idle()) gets the untagged EXISTS within a deadline after smtplib
//     (STARTTLS, login, send_message) has sent, then fetches the message it was sent.
//   - mbsync from isync (TestMbsync): mirrors alice's node into a Maildir, every folder including the
//     special-use ones (Sent, Drafts, Trash, Junk, Archive) and Chats; a flag change (\Seen and
//     \Flagged), a move to Archive and a deletion made in the Maildir reach the node's store on the
//     next run, and new mail on the node reaches the Maildir.
//   - mutt (TestMuttSend): sends non-interactively (mutt -s … < body) through alice's node with
//     ssl_force_tls, STARTTLS and the certificate in certificate_file, to bob with carol in Cc (three
//     nodes); both get it, and alice's Sent holds the one copy the node filed.
//
// The clients come from Debian: swaks, python3, isync, mutt, and libsasl2-modules (Cyrus SASL's PLAIN
// mechanism, which mbsync authenticates with; only a Recommends of libsasl2-2). .ci/run installs them:
//
//	apt-get install --no-install-recommends swaks python3 isync mutt libsasl2-modules
//
// A test whose client is missing is skipped, or fails when CI is set in the environment (CI must run
// every test). Client configuration, Maildirs and HOME are per-test temporary directories; no test
// reads the user's own client configuration or talks to anything but 127.0.0.1.
//
// Run them with the rest of the suite, or alone:
//
//	go test -race ./test/e2e
package e2e
