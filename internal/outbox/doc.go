// Package outbox is the sender's engine (HACKING.md, layout): it takes the recipients that the store's outbox
// queue says are due, seals the message to each (package seal, protocol.md §6, §10.1), builds a block
// with proof of work for every envelope (package tangle), publishes it, and waits for the recipient's
// delivery receipt (protocol.md §10.2), publishing the same envelope again while none comes, until the
// message's lifetime is over; then the recipient fails and a delivery status notification (mail.Bounce)
// goes into the sender's INBOX. It also sends the receipts the inbox asks for (their content is
// encoded by mail.EncodeReceipt) and sets store.DeliveredKeyword on the Sent copy once all recipients
// have acknowledged.
//
// # API
//
//	func New(Config) (*Outbox, error)         // Store, Identity, Params, Publisher, Tips; clock, logger, workers…
//	func (*Outbox) Run(ctx) error             // works the queue until ctx is done
//	func (*Outbox) Notify()                   // wake now (peers connected, test clock moved)
//	func (*Outbox) HandleReceipt(ctx, from identity.Address, keys [][32]byte) error
//	func (*Outbox) SendReceipt(from *identity.Identity, to identity.Address, keys [][32]byte, ttl uint32)
//	func (*Outbox) Progress() Progress        // blocks being ground, waiting for peers, queued receipts
//	func (*Outbox) Stats() Stats
//
// Config.OnProgress is called as each block's proof of work starts, progresses (about ten times a
// second, hashes done of expected) and ends, for status displays and the web client.
//
// # State machine (per recipient, in the store; store.UpdateRecipient checks the transitions)
//
//	pending ──seal, store envelopes──▶ sealed ──build+publish every block──▶ published ──receipt──▶ delivered
//	   │                                  │ publish failed: stays, retried with backoff      │ no receipt after the
//	   │                                  │                                                  │ retry interval: publish
//	   │                                  │                                                  │ again (same envelopes)
//	   │                                  │                     lifetime over, no receipt:   ▼
//	   │                                  │                     delay notice ──────────▶ delayed ──receipt──▶ delivered
//	   │                                  │                                                  │ grace period over:
//	   └──── bad address, too large, or the lifetime over unpublished ─────────────▶ failed ◀┘ final bounce
//	                                                                       failed ──late receipt──▶ delivered
//
// Details:
//
//   - Lifetime: an item's recipients are published until created + TTL (DefaultMailTTL, 4 days;
//     DefaultChatTTL for chat). That is also the TTL of every block, so the last block published still
//     lives then. A published recipient without a receipt by then is not failed: a storage node may
//     keep its blocks for a recipient that is away (protocol.md §10.2, sender rule 3). It becomes
//     delayed, with a delay notice (RFC 3464 Action "delayed", Will-Retry-Until; mail only) in the
//     sender's INBOX filed in the same transaction, and is due again at the end of the grace period
//     (Config.DeliveryGrace, DefaultDeliveryGrace 30 days, stored as its next attempt, so a restart
//     keeps it). A receipt meanwhile delivers it ($Delivered on the Sent copy as usual); otherwise it
//     fails then with the final bounce. Nothing is republished in the grace period. A recipient never
//     published by the end of its lifetime fails at once (no block can reach anyone).
//   - Republishing: after the n-th publication the recipient is due again after RetryInterval·2^(n−1)
//     (default 15 min, at most TTL/8 to begin with and TTL/4 in all), never after the deadline. Each
//     publication is a new block (issuing time, parents, random tag bits, nonce) carrying the stored
//     envelopes; observers can link the copies by their identical payload, which is the price of never
//     resealing.
//   - No peers: while Publisher.PeerCount() is 0 nothing is sealed or ground; due recipients keep their
//     state and next-attempt time untouched (so "pending" stays pending), and the loop polls PeerCount
//     (100 ms doubling to 5 s) or waits for Notify. Expiry is still enforced meanwhile. A Publish error
//     is recorded in the recipient (LastError, an attempt) and retried after 1 s, doubling to 5 min.
//   - Kinds: an item with a chat content (store.OutboxNew.Content, set by the chat layer) goes as chat
//     (kind 2, chat TTL, one envelope carrying that content, protocol.md §10.3); anything else as
//     mail (kind 1) with protocol.md §10.1's content: the message with Bcc and Resent-Bcc removed, inline
//     or as chunks (kind 4) and a manifest. All envelopes of one recipient are stored as one bundle in
//     the recipient's Envelope column (bundle.go), chunks first and the mail envelope last; its replay key
//     is the recipient's EnvelopeKey, the key the receipt names. The chunked form's message id is a MAC
//     of the outbox item under a key derived from the identity, so every recipient gets the same id.
//   - Blob mail: with Config.Blobs set (a full node), a message that does not fit one envelope is not
//     chunked: Blobs.SealBlob stores it as one sealed blob (the same for every recipient of the item,
//     also after a restart) and the mail envelope carries its ref and a copy of the header section
//     (protocol.md §13.7, §13.8); only that envelope pays proof of work. A SealBlob error leaves the
//     recipient pending, retried at the next pass. Such an item is never held whole: the pass keeps
//     only its header section (item.large), and SealBlob reads the message, Bcc removed from the
//     header, from the store a piece at a time (store.OutboxReader).
//
// # Crash safety
//
// Every step commits before the next one depends on it, and the only state is in the store:
//
//   - Submit puts the Sent copy and the outbox item in one transaction (package store).
//   - Sealing draws a fresh HPKE key, so a new seal is a new replay key and would be filed again. The
//     envelopes are therefore committed (pending → sealed, with the key) before any block carries them.
//     A crash before that commit published nothing, and sealing again is harmless; a crash after it
//     finds the recipient sealed and publishes the stored envelopes. No code path seals a recipient that
//     is not pending.
//   - A crash between Publish and the → published commit leaves the recipient sealed: it is published
//     again, with the same envelopes, and the receiver files the replay key once (DeliverOnce).
//   - A crash while waiting for a receipt loses nothing: the recipient is published and is republished
//     when due. A lost receipt is replaced because the receiver answers duplicates with receipts too.
//   - Failing a recipient and filing its bounce are one transaction: exactly one bounce per failure. A
//     receipt racing with the failure wins or loses cleanly (ErrBadTransition rolls the bounce back).
//     Likewise delaying a recipient and filing its delay notice.
//   - Receipts to send are in memory only (SendReceipt never blocks the inbox): if the process dies
//     before sending one, the sender republishes, the duplicate arrives, and the receipt is queued again.
//   - Receipts wait a random delay before they are sent (protocol.md §10.2 rule 5, receipts.go), well
//     below the republish interval; a crash meanwhile loses only the wait, as above.
//
// # Implementation notes
//
//   - Ordering: one goroutine (Run) works the queue, recipients in next-attempt order, each at most once
//     per pass; so a recipient is never worked by two goroutines and its transitions are sequential.
//     HandleReceipt runs on the inbox's goroutines and only moves recipients to delivered, a final
//     state; the worker's later update then fails with ErrBadTransition, which it ignores. A second
//     goroutine sends receipts, so receipts are not stuck behind a long proof of work.
//   - Blocks of one recipient are ground one after another, each by Workers goroutines (tangle's
//     Grind); the mail and receipt goroutines may grind at the same time. With Config.Yield set, the
//     grind gives way (tangle.WithYield) while it reports true: the node sets it to recent activity on
//     its SMTP and IMAP front doors, so a user's client stays responsive while earlier mail grinds.
//   - Waking: Run sleeps until the earliest next attempt (at most a minute), a Notify, or a store
//     change that makes a recipient pending (a submission). Due times use the Clock; sleeping uses real
//     timers, so after moving a test clock call Notify.
//   - A receipt acknowledges a key only when its signer is the address the envelope was sealed to:
//     replay keys are public, so a key alone proves nothing.
//   - Logs carry outbox ids, block ids and counts, never message content; recipient addresses only at
//     debug level.
package outbox
