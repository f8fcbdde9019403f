// Package mail is tanglemail's message model: what the node does to an RFC 5322 message between its
// user's mail client and the network, without network or store. It parses a submitted message,
// completes and strips its header for delivery, splits a large message into envelope contents and
// puts it back together, and writes the bounces the sender gets.
//
// Contents:
//   - Parse reads the header fields a node needs (RFC 5322 §3.6): From, Sender, Reply-To, To, Cc,
//     Bcc, Message-ID, In-Reply-To, Date, Subject. Who gets a message is decided by the SMTP envelope
//     (RFC 5321 §3.3, RCPT TO), never by To/Cc/Bcc, which are for display; ParseRecipient turns an
//     envelope address into an identity.Address and says in plain words why one is refused.
//   - StripBcc removes Bcc and Resent-Bcc fields; AddMissing adds Date and Message-ID when the client
//     sent none (RFC 6409 §8.2, §8.3); InsertFields adds other fields. They work on the raw bytes:
//     a message is never re-serialised, every byte they do not remove or add is kept as the client
//     wrote it (so signatures over the body, odd folding and 8-bit header bytes survive).
//   - Split and Reassembler implement protocol.md §10.1: a message that does not fit one envelope
//     (content ≤ 32,145 bytes, protocol.md §6) travels as a manifest in the mail envelope and chunk
//     envelopes; ParseMailContent and ParseChunk parse envelope contents.
//   - Bounce builds an RFC 3464 delivery status notification for the sender's INBOX.
//   - DelayNotice builds the RFC 3464 "Action: delayed" notice (with Will-Retry-Until) for a recipient
//     that has not acknowledged within the TTL but still may (protocol.md §10.2, sender rule 3).
//   - EncodeReceipt and ParseReceipt are the delivery receipt content (protocol.md §10.2), here so
//     that the outbox (which sends receipts) and the inbox (which reads them) need not import each
//     other.
//
// Decisions:
//   - Bcc (RFC 5322 §3.6.3 offers three ways): every recipient, blind ones included, gets the message
//     without any Bcc field, so nobody learns of the blind copies, not even the blind recipients of
//     each other. The sender's Sent copy keeps its Bcc field, because it records whom the user wrote
//     to and mail clients (Thunderbird among them) show it there. The store keeps one body for the
//     Sent copy and the outbox item (store.Submit), so the outbox keeps the Sent copy's bytes and
//     MUST apply StripBcc before sealing; StripBcc is deterministic, so the delivered bytes are a
//     function of the stored ones.
//   - Header fields are added at the end of the header, after the client's fields, in the line ending
//     the header uses; the Date the node adds is in UTC so it does not disclose the node's time zone.
//     The Message-ID is 128 random bits at "tangle", so it names neither the user nor the host.
//   - Chunked messages are identified by the sender's key and a random message id, not by the
//     id alone: a chunk from anyone else with the same id never mixes in. The manifest names the
//     length and BLAKE2b-256 hash of the whole message, so a reassembled message is either exactly
//     what the sender signed piece by piece or nothing.
//   - The Reassembler is in memory and bounded (message size, number and bytes of incomplete
//     messages); durability of pieces across restarts belongs to the inbox, which can store the
//     opened envelopes and feed them again.
//   - Bounces are multipart/report (RFC 6522) with the three RFC 3464 parts: a text/plain
//     explanation in plain words, message/delivery-status (Reporting-MTA "dns; tangle",
//     Final-Recipient "rfc822; <address>@tangle", Action failed, an RFC 3463 Status such as 5.4.7 for
//     "no delivery receipt", Diagnostic-Code of type X-Tanglemail), and text/rfc822-headers with the
//     original header only, never the body.
package mail
