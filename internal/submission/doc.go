// Package submission is the node's SMTP message submission server (RFC 6409): the front door through
// which the user's mail client sends. It adapts github.com/emersion/go-smtp to a Backend; no go-smtp
// type appears in its API. The node wires it to the store with StoreBackend.
//
// Protocol:
//   - Authentication (RFC 4954) with SASL PLAIN (RFC 4616, through go-sasl) and LOGIN (implemented
//     here; go-sasl has only its client). Any user name is accepted; the password is compared in
//     constant time (SHA-256 of both sides, so the length does not leak either). PLAIN with an
//     authorization identity other than the user name fails. Failures are 535 5.7.8, malformed
//     responses 501 5.5.2, unknown mechanisms 504 5.7.4.
//   - AUTH is offered on a connection with TLS, and without TLS only to a local one (TCP from a
//     loopback address, a Unix socket): RFC 4954 §4 says plaintext mechanisms need a confidentiality
//     layer, and loopback traffic does not leave the machine. Elsewhere EHLO does not list AUTH and
//     AUTH is 538 5.7.11 (RFC 4954 §6) until STARTTLS (RFC 3207, offered when Options.TLSConfig is
//     set). For implicit TLS (RFC 8314), pass a tls.NewListener to Serve.
//   - No mail transaction without AUTH: MAIL before it is 530 5.7.0 (RFC 4954 §6), and RCPT and DATA
//     cannot come before MAIL.
//   - MAIL FROM must be the user's address (Options.Address, any case) or the null path; another is
//     553 5.7.1 (RFC 6409 §6.1 lets an MSA refuse senders the user may not use). The From header
//     field must name only that address (550 5.7.1 otherwise) and is added when absent: every tangle
//     message is signed by the user's identity, so a client configured with another address would
//     otherwise send mail whose From says one thing and whose signature another.
//   - RCPT TO takes tangle addresses only, "<address>@tangle" with the domain in any case; anything
//     else is 550 5.1.1 (RFC 3463: bad destination mailbox address) with the reason in words, e.g.
//     "bob@example.com is not a tangle address: tanglemail delivers only to <address>@tangle" or
//     "…@tangle is not a valid tangle address: bad address checksum". A repeated recipient counts
//     once. The envelope decides who gets the message (RFC 5321 §3.3); To, Cc and Bcc are display.
//     More than Options.MaxRecipients is 452 4.5.3 (go-smtp; advertised as LIMITS RCPTMAX).
//   - SIZE (RFC 1870) advertises Options.MaxMessageBytes; MAIL with a larger SIZE= and a larger
//     message are 552 5.3.4. go-smtp's DATA reader stops at the limit before it can see the final
//     dot, so through DATA the largest message accepted is one byte below the advertised SIZE (BDAT
//     accepts exactly SIZE). go-smtp also advertises PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES
//     (RFC 2034, codes of RFC 3463) and CHUNKING (BDAT, RFC 3030); the message is stored as bytes,
//     so 8-bit content passes unchanged. Lines are limited to 2000 bytes (go-smtp's default, twice
//     RFC 5321 §4.5.3.1.6): a longer one is 500 5.5.2 and go-smtp closes the connection.
//   - DATA: the message is read (bounded by the limit): up to SpoolThreshold (1 MiB) into memory;
//     a larger one, with Options.SpoolDir set (the node sets <datadir>/spool), into a spool file
//     (0600, synced before Submit, removed once Submit has returned, leftovers of a killed process
//     removed by New: they were never acknowledged), and the backend gets its header section plus a
//     reader of the rest (Message.Text), so the node never holds a large message whole. Its header
//     is parsed (554 5.6.0 if it cannot be), Date and Message-ID are added when absent (RFC 6409 §8.2, §8.3; package mail
//     inserts them without re-serialising anything), and Backend.Submit gets the delivered bytes
//     (Bcc and Resent-Bcc removed) and the Sent copy (Bcc kept). Only when Submit has returned nil —
//     the message is durable — does the client get "250 2.0.0 OK: queued as <id>"; an error is
//     451 4.3.0, so the client keeps the message and retries. Nothing acknowledged is lost, and
//     nothing lost is acknowledged.
//
// Implementation notes:
//   - go-smtp's sessions have no context; Submit gets one derived from the server's, cancelled by
//     Close, bounded by Options.SubmitTimeout. Shutdown lets submissions in progress finish first.
//   - go-smtp sends the code of the error Session.Data returns; a success with the queue id is
//     returned as an SMTPError with code 250.
//   - go-smtp's AllowInsecureAuth is set, because its own rule (TLS or nothing) would refuse AUTH on
//     loopback; the session applies the rule above instead, per connection, and a session is created
//     again after STARTTLS.
//   - Logging (Options.Logger) names connections, mechanisms, queue ids, recipient counts and sizes,
//     never addresses of recipients, message content or passwords. go-smtp's own error log goes to
//     the same logger. A panic in a session method is logged with its connection before go-smtp
//     recovers it (421 and close).
//   - Every accepted TCP connection sets TCP_QUICKACK (Linux, tcp(7)) before each read (quickack.go):
//     after the TLS 1.3 handshake of STARTTLS a client with Nagle's algorithm on (most mail clients)
//     held EHLO back until the server's delayed ACK of its Finished, about 45 ms per connection.
//   - go-smtp issue #129 (still in v0.25.1): after "Too many errors" it closes the connection but
//     carries on with commands a pipelining client already sent, and MAIL, RCPT, DATA or BDAT then
//     hit a nil session; go-smtp recovers the panic and logs it. No code of ours runs and nothing
//     reaches the backend; FuzzSession tolerates exactly that panic.
package submission
