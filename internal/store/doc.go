// Package store owns the mailbox store of one account: one SQLite file (e.g. mail.db) holding the
// account's mailboxes and messages with IMAP semantics, the outbox queue, the inbox's replay keys and
// the contacts, plus the account's change bus. It knows nothing about IMAP, SMTP or the network: the
// front doors (IMAP, submission, web) and the message layers (outbox, inbox) translate to its calls.
//
// Model (after mox's store, github.com/mjl-/mox/store):
//   - A Mailbox has a UIDVALIDITY, a UIDNEXT and a highest MODSEQ. Seven mailboxes exist from the first
//     Open on: INBOX, Sent, Drafts, Trash, Junk, Archive (with their RFC 6154 special-use attributes) and
//     Chats (none). Each has a Role; role mailboxes can be renamed but not deleted, and the layers above
//     find them by role, never by name. Names are UTF-8, hierarchical with "/" (Delimiter); "INBOX" is
//     case-insensitive.
//   - A message is the raw RFC 5322 bytes (immutable, never rewritten), an internal date, a size, system
//     flags and keywords, a UID, a MODSEQ and a CREATESEQ, plus local metadata (Meta) in columns: the
//     sender address the network layer verified, a conversation id, a "delivered via the tangle" marker,
//     the outbox item it was submitted as. Nothing local is ever injected into the bytes.
//   - Bytes live in a content-addressed body table (SHA-256 of the message), split at the end of the
//     header. COPY, MOVE, the Sent copy and its outbox item share one row, so no operation duplicates
//     bytes; header reads and header searches do not touch the body; and the message table stays small
//     (no blobs), which keeps listing 100k messages a scan of narrow rows. Bodies are kept in SQLite,
//     not in files, so one fsync of the WAL makes a delivery durable and the whole account is one file
//     to back up. A body row is removed in the transaction that drops its last reference.
//   - Large messages are never held whole (migration 0006): a message filed from a reader
//     (NewMessage.Body, OutboxNew.Body: spooled submissions, fetched blob mail) whose text is larger
//     than PieceSize (256 KiB) keeps its header section in body.header and its text in body_piece rows
//     of exactly PieceSize bytes (the last shorter), hashed as they are written; the placeholder hash
//     is replaced at the end, and if the bytes were stored before, the new rows are dropped in the same
//     transaction. Raw, RawRange, search and OutboxRaw join or cut pieces; BodyReader (RawReader,
//     OutboxReader) reads one piece at a time, each in a read transaction of its own, checking the
//     body's hash so that a removed body fails the read (ErrNoMessage) instead of reading another.
//     Filing from a reader reads it inside the write transaction: the writer lock is held while a
//     25 MiB message is read (from a local spool file or blob, well under a second).
//   - Expunge leaves a tombstone row (expunged, with the MODSEQ of its removal, no body). Tombstones are
//     what CONDSTORE/QRESYNC need (Vanished). PurgeTombstones deletes old ones and raises the account's
//     HighestDeletedModSeq: a client that asks for changes since an older MODSEQ gets ErrHistoryGone.
//     Queries of live messages go through a partial index of the live rows (message_live), so their
//     cost follows the live messages, however many tombstones a mailbox has left.
//
// Implementation notes:
//   - Single writer. Every write runs in Store.Update: it takes the store's writer lock (a one-slot
//     channel, so waiting honours the context), opens an IMMEDIATE transaction on the writer connection
//     (the writer pool has one connection), runs the operation, commits, and then — still holding the
//     lock — hands the transaction's changes to the bus. Commits and broadcasts therefore happen in the
//     same order, and a listener sees changes in commit order. Group commit: Updates that arrive while
//     the lock is held queue, and the next one to take the lock runs the queued fns in arrival order,
//     each in a SAVEPOINT of one transaction (a failing fn rolls back alone), and commits them with
//     one fsync; each still took its own MODSEQ and none returns before the commit is durable. With
//     ten clients submitting at once this shares one fsync among several mails. Readers use a separate pool of
//     read-only connections; WAL lets them read while the writer writes. Open a file with one Store
//     per process: two Stores on one file would serialise through SQLite's lock but not share a bus.
//   - Mailbox and outbox ids are never reused (AUTOINCREMENT), so an id held by a session can go stale
//     (ErrNoMailbox) but never point at another mailbox.
//   - Durability: journal_mode=WAL and synchronous=FULL, so when a write returns nil its transaction is
//     on disk (the WAL is fsynced at commit). The node may acknowledge SMTP 250 or IMAP OK after that.
//   - Opening and schema: package sqlitedb opens the file (the pragmas above, foreign keys on, a busy
//     timeout) and applies migrations/NNNN_what.sql in one transaction, recorded in schema_version; a
//     file from a newer program is refused (ErrSchemaTooNew).
//   - MODSEQ is account-wide (account.last_modseq, mox's LastModSeq): a write transaction that changes
//     something takes exactly one new value, and every message it adds or changes and every Change it
//     broadcasts carries that value. A transaction that changes nothing (e.g. a STORE that sets flags a
//     message already has) takes none and broadcasts nothing. A mailbox's HIGHESTMODSEQ and its counts
//     (messages, unseen, deleted, size) are maintained by SQL triggers on the message table.
//   - UIDs: a mailbox's UIDNEXT only grows; UIDs are handed out from it in the writer's transaction, so
//     they are strictly increasing per mailbox and never reused for a UIDVALIDITY, expunged or not.
//     UIDVALIDITY comes from a generator (WithUIDValidity, default: the clock in seconds) but the store
//     makes every value strictly greater than the previous one it handed out in this account, so a
//     (name, UIDVALIDITY) pair never names two different mailboxes: a name reused by a new mailbox (after
//     DELETE or RENAME) always gets a new UIDVALIDITY (RFC 3501 §2.3.1.1). RENAME keeps the mailbox, its
//     UIDs and its UIDVALIDITY; renaming INBOX moves its messages to a new mailbox (RFC 3501 §6.3.5).
//   - The change bus never blocks the writer: each Listener has a bounded queue; when a broadcast does
//     not fit, the listener's queue is dropped and it is marked overflowed, and its next Take reports
//     that it must resync. A listener that subscribes before it reads a snapshot (List returns the
//     account MODSEQ of its snapshot) drops queued changes whose ModSeq is not above the snapshot's;
//     the same rule recognises a session's own writes (their results carry the ModSeq).
//   - Exactly-once: the outbox item is enqueued in the same transaction as the Sent copy (Submit), and an
//     inbox delivery claims its replay key in the same transaction as it files the message
//     (DeliverOnce); Tx lets callers compose other atomic writes.
//   - An outbox recipient's tangle address is parsed once, at Enqueue (OutboxRcpt.Addr, stored in its
//     binary form; rows from before migration 0004 are parsed when the store opens), never on the
//     outbox's passes.
//   - Statements are prepared once (stmtCache, bounded): a query met for the first time runs unprepared
//     and is prepared after its transaction ends, never inside one (the write database has one
//     connection, which the transaction holds).
//   - Search pushes flag, date, size, UID and MODSEQ conditions into SQL and scans the remaining
//     candidates in UID order in batches within one read transaction, loading a message's header or
//     body only when a criterion needs it, one message at a time. There is no full-text index (mox has
//     none either); bodies are MIME-decoded (transfer encoding and charset) for BODY and TEXT.
//   - Importing this package imports github.com/emersion/go-message/charset, which sets
//     message.CharsetReader for the whole program.
package store
