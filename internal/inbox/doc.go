// Package inbox is the receiver's engine (HACKING.md, layout): it trial-opens the blocks the network hands it for
// each of the node's identities (protocol.md §6), files what opens exactly once — mail into INBOX,
// chat into Chats, chunked mail once all its pieces are in (protocol.md §10.1) — acknowledges it with a
// receipt (protocol.md §10.2) through a ReceiptSender, and passes receipts it receives to a
// ReceiptHandler. *outbox.Outbox is both.
//
// # API
//
//	func New(Config) (*Inbox, error)      // Store, Identities, Params; Receipts, OnReceipt, clock, logger…
//	func (*Inbox) Run(ctx) error          // the workers (and pruning) until ctx is done
//	func (*Inbox) HandleBlock(*tangle.Block)               // register with p2p.Node.OnBlock
//	func (*Inbox) Process(ctx, *tangle.Block) Outcome      // synchronous, reports what happened
//	func (*Inbox) Prune(ctx); Pending(ctx); Stats(); Close()
//
// # Per block
//
//  1. Tag check for every identity at once (HandleBlock, on the caller's goroutine: a masked compare
//     per identity, no cryptography). A block for nobody here ends there.
//  2. The block goes to a bounded queue served by Workers goroutines (default 2), which HPKE-open it for
//     each identity whose tag matched. ErrTagMismatch and ErrNotForUs are the silent common case;
//     ErrMalformed and ErrBadSignature are counted (Stats) and logged at debug level, without content.
//     When the queue is full HandleBlock waits: p2p's OnBlock queue then fills and applies backpressure
//     to ingestion, so no block is dropped for being too many.
//  3. An opened envelope is checked against the replay window (below), then by kind:
//     mail (kind 1, §10.1 content): inline → store.DeliverOnce into INBOX, Meta{SenderVerified: the
//     sender's address, ViaTangle}; manifest → kept as a piece. Chunk (kind 4) → kept as a piece.
//     Chat (kind 2) → DeliverOnce into Chats (content = the message, provisionally). Receipt (kind 3) →
//     mail.ParseReceipt → OnReceipt.HandleReceipt(sender, keys).
//  4. Every mail or chat envelope that is filed — now, or before (a duplicate) — is receipted; a store
//     error files nothing and sends no receipt (the sender will publish again).
//
// # Exactly once, and the receipt argument
//
// DeliverOnce claims the envelope's replay key (its enc) and appends the message in one transaction, so
// a message is filed once however many blocks carry it, whatever the order, and across restarts. The
// receipt is queued only after that commit, in memory (outbox.SendReceipt batches it with others for the
// same sender). If the node dies before the receipt leaves, nothing is lost: the sender, without a
// receipt, publishes the same envelope again after its retry interval; DeliverOnce reports a duplicate;
// and a duplicate MUST and does trigger a receipt again. The same argument covers a receipt lost on the
// network, and a block that p2p stored but the inbox never processed (p2p hands a block to OnBlock only
// once, when it is first stored): the sender's republication delivers it. So receipts need no durable
// queue, and the inbox no durable work list.
//
// Replay window: an envelope is filed only while now < sent + ReplayWindow (sent is signed by the sender;
// default window 2 × the maximum TTL, 56 days), and its replay key is kept until max(that, the block's
// expiry). Relays see every enc and payload and could re-wrap an old payload in a fresh block at any
// time; with the window, a payload whose key has been pruned (store.PruneReplayKeys, run by Prune) is
// too old to be filed again. Block expiry alone would not do: a sender republishes the same envelope in
// later blocks for up to a TTL.
//
// # Blob mail
//
// A mail envelope carrying a blob ref (protocol.md §13.7) is handed to Config.Blobs (the node's blob
// service; this package does not import package blob) after a check that its replay key is not already
// claimed (then it is only receipted again). The blob service records it durably, fetches the blob and
// calls FileBlobMail, which files the message with DeliverOnce and only then queues the receipt.
// Without a blob service such mail is ignored, never filed without its message.
//
// # Chunked messages
//
// Pieces (the manifest and the chunks) are kept in a small SQLite file owned by this package (chunks.go;
// default <store>.chunks.db), keyed by (sender key, message id, index), so a message completes across
// restarts and in any order; the account store needs no new table. A piece whose replay key the store
// has seen is a duplicate (the message was filed): the manifest's is receipted again, a chunk's dropped.
// When an insert completes a message (its manifest and every chunk, checked in the insert's
// transaction, so two workers cannot both miss completion), mail.Reassembler checks that the pieces
// agree and match the manifest's length and hash; then one store transaction claims the manifest's key
// and every chunk's key and appends the message. The pieces are deleted afterwards; a crash in between
// leaves them to Prune, which drops pieces of filed messages and of messages whose blocks have all
// expired. Limits: MaxMessageSize (25 MiB), MaxPendingMessages (1024) and MaxPendingBytes (256 MiB) of
// incomplete messages; pieces beyond them are dropped and come again with the sender's republication.
// The file is synchronous=NORMAL: losing its last writes in a power cut is covered by the receipt
// argument above, since nothing about a chunked message is acknowledged before it is filed.
//
// # Implementation notes
//
//   - Workers process blocks concurrently; nothing depends on their order (DeliverOnce and the piece
//     table serialise what must be). The Opener of each identity is immutable and shared.
//   - The receipt goes from the identity that opened the envelope (for a chunked message, the manifest)
//     to the sender address inside it; a receipt TTL is the acknowledged kind's default TTL.
//   - The mailbox ids of INBOX and Chats are looked up once in New: role mailboxes cannot be deleted and
//     keep their ids (renaming INBOX moves its messages to a new mailbox, not the id).
//   - Logs carry block ids, kinds and counts; never content; sender and identity addresses only at
//     debug level.
package inbox
