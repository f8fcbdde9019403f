// Package payment owns paying storage providers in IOTA tokens and checking such payments on chain
// (docs/protocol.md §14). It is a service-layer package: it imports no other service or
// engine; internal/node wires it to the storage provider's Activate seam.
//
// # Pieces
//
//   - Quote (quote.go): a provider's signed offer — subscription id, amount, payee address, chain id,
//     what it buys (MiB, days) and an expiry — with its compact encoding (protocol.md §14.1) and the
//     calldata that names it on chain (§14.2). Amounts are in nano-IOTA (Nanos, 10^-9 IOTA): the unit of
//     IOTA Rebased, and 10^9 wei on IOTA EVM, whose nodes drop sub-10^9-wei digits of values, so every
//     amount a quote can carry survives that chain.
//   - Rail (rail.go): how money moves. Pay is idempotent per quote; Verify checks one transaction
//     against one quote on chain and counts nothing.
//   - EVM (evm.go): the rail over Ethereum JSON-RPC (go-ethereum's ethclient): IOTA EVM (chain id
//     8822), geth --dev, go-ethereum's simulated backend. Several endpoints must agree on every answer;
//     each call is retried with backoff when an endpoint is down or slow.
//   - Ledger (ledger.go): payment.db (internal/sqlitedb, WAL, synchronous=FULL). On the provider, the
//     table of counted transactions (a transaction counts once, ever, across restarts) and the paid
//     periods; on the subscriber, the signed transaction of each quote, written before it is sent, so
//     that paying a quote again re-sends the same transaction instead of paying twice.
//   - Verifier (verifier.go): quote signature → Rail.Verify → Ledger.Claim → Activate, in that order.
//   - Wallet (wallet.go): the rail key, kept in the data directory encrypted under the identity's
//     passphrase (argon2id + XChaCha20-Poly1305, like internal/identity's keystore), or unencrypted
//     only with the user's explicit acknowledgement. WalletAddress reads a wallet's address without
//     its passphrase.
//   - BalanceWatcher (watcher.go): watch-only — the wallet's address, never its key — it keeps the last
//     balance read (eth_getBalance), when it was read and the last error, polling at an interval and
//     with backoff after a failure; the node's status reads it without waiting for the chain.
//
// # Invariants
//
//   - A transaction hash is counted at most once (PRIMARY KEY of counted_tx); a second subscription
//     offering it is refused with ErrAlreadyCounted, the same subscription offering it again gets the
//     first claim back and activates nothing new.
//   - A claim's paid-until is computed once, when it is counted, in the same SQLite transaction
//     (max(now, the subscription's latest paid-until) + days), so re-running Activate after a crash
//     gives the same result: Activate(ctx, id, until) is idempotent.
//   - Nothing is counted unless every check of Verify passed on every endpoint.
//
// # Locking
//
// EVM serializes Pay (one wallet, one nonce sequence) with a mutex; Verify is safe for concurrent use.
// BalanceWatcher serializes its reads of the chain (a slow old read never overwrites a newer one) and
// guards its last reading with a mutex held only to copy it.
// Ledger writes are serialized by SQLite (one writer connection, BEGIN IMMEDIATE).
package payment
