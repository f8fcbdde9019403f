// Package gateway is the bridge to Internet mail, both ways (docs/protocol.md §15). Inbound, a node
// that is the MX of a DNS domain accepts mail for addresses that tanglemail users have claimed, checks
// it (SPF, DKIM, DMARC), seals it to the claiming user in memory and queues the sealed envelope in the
// node's outbox, which publishes it like any mail. Outbound, it relays the relay messages of claimants
// to Internet recipients (§15.4). It owns:
//
//   - claims (claim.go, claims.go): the signed claim request (protocol.md §15.1), its decoder, and the
//     durable claim table in gateway.db (SQLite via sqlitedb, synchronous=FULL). Policy (open or an
//     allowlist) is the operator's; the RFC 2142 role names are never claimable and deliver to the
//     operator's own tanglemail address.
//   - the claim API (http.go; its client, client.go): GET /gateway (who the gateway is) and POST /claim
//     (a request's wire form), served over plain HTTP; a request is self-authenticating, so only the answer is unauthenticated
//     (docs/threat-model.md).
//   - the MX (mx.go): go-smtp with STARTTLS, RFC 5321 limits (recipients, size → 552, timeouts,
//     connections in all and per IP), RCPT of an unknown address → 550 5.1.1.
//   - authentication (auth.go): SPF (RFC 7208, blitiri.com.ar/go/spf), DKIM (RFC 6376, go-msgauth),
//     DMARC (RFC 7489: record discovery with the organizational domain from the public suffix list,
//     alignment, policy, pct sampling) and the Authentication-Results field (RFC 8601) prepended to the message.
//   - the outbound relay (relay.go, relayqueue.go, deliver.go, dsn.go; protocol.md §15.4): relay
//     messages from identities with an active claim, rate-limited per claim, From rewritten to the
//     claim and DKIM-signed, queued durably in relay.db (the one place plaintext is kept, until
//     delivered: docs/threat-model.md), delivered by MX lookup with opportunistic STARTTLS, retried
//     with backoff; delivered and failed reports (RFC 3464) go back sealed through Config.Queue.
//
// # Invariants
//
//   - Inbound, nothing readable is written: the message exists in memory from DATA until Config.Queue has sealed
//     it (the node passes outbox.EnqueueSealed), and only the sealed envelopes and a placeholder body
//     reach the store. The package does not import the outbox: engines meet only in node.
//   - "250" is said only after the sealed envelopes of every recipient are committed (store transaction
//     with synchronous=FULL); any error before that is a 451 and the sender retries.
//   - DMARC p=reject (and per-IP limits) refuse the mail before anything is sealed, so no proof of work is
//     spent on it: sealing and PoW happen after the checks, PoW in the outbox after the 250.
//
// # Locking
//
// The MX's per-IP connection counts are guarded by one mutex; the claim table by SQLite (one writer
// connection). Each SMTP session is handled by its own goroutine (go-smtp) and shares nothing else.
// The relay queue is SQLite with one writer connection too; the relay's delivery loop (Relay.Run) is
// one goroutine, and its counters sit behind their own mutex.
//
// # Logs
//
// Addresses and content only at debug level; info and above carry counts, results and queue ids.
package gateway
