// Package imapserver owns the node's IMAP front door: an IMAP4rev1/IMAP4rev2 server (RFC 3501, RFC
// 9051) for the one account whose mailboxes an internal/store.Store holds, so that existing mail
// clients (Thunderbird, mutt, mbsync, …) read the account's mail and chats. It is an adapter: the
// protocol is github.com/emersion/go-imap/v2's imapserver (pinned at v2.0.0-beta.8), the state is the
// store's, and no go-imap type appears in this package's API. The caller chooses the listener
// (loopback by default, docs/api.md) and the credentials.
//
// Capabilities, beyond IMAP4rev1 and IMAP4rev2: IDLE (RFC 2177), UIDPLUS (RFC 4315), MOVE (RFC 6851),
// SPECIAL-USE (RFC 6154), ESEARCH (RFC 4731), SEARCHRES (RFC 5182), LITERAL+ and LITERAL- (RFC 7888),
// ID (RFC 2971), NAMESPACE (RFC 2342), UNSELECT (RFC 3691), APPENDLIMIT (RFC 7889), LIST-EXTENDED
// (RFC 5258), LIST-STATUS (RFC 5819), STATUS=SIZE (RFC 8438), BINARY (RFC 3516), CHILDREN (RFC 3348),
// ENABLE (RFC 5161), UTF8=ACCEPT (RFC 6855), SASL-IR (RFC 4959) with AUTH=PLAIN, and STARTTLS when
// Options.TLSConfig is set. Not offered: CONDSTORE/QRESYNC (go-imap's server cannot parse them; the
// store keeps MODSEQ and tombstones for when it can), CREATE-SPECIAL-USE (the special-use mailboxes
// exist from the start), QUOTA, SORT, THREAD, NOTIFY, COMPRESS.
//
// Authentication: one user name (Options.Username, "tanglemail" by default, compared
// case-insensitively) and the account's password, compared in constant time. A connection that is
// not local (Options.AllowInsecureAuth; by default loopback, Unix sockets and pipes are local) gets
// LOGINDISABLED and [PRIVACYREQUIRED] until it has TLS (RFC 9051 §6.2.3), so a client never sends the
// password in clear text over a network.
//
// Implementation notes:
//
//   - Two go-imap servers. go-imap decides "may authenticate without TLS" per server, not per
//     connection; Serve accepts connections itself and hands each to one of two go-imap servers that
//     differ only in that setting.
//   - Session lifecycle. go-imap creates a session per connection and calls its methods one at a time
//     from the connection's goroutine; IDLE runs on a second goroutine while the first waits for
//     DONE, and Close may overlap the end of an IDLE, so a mutex per session serialises them. Each
//     session has a context (a child of the server's) that Close and Server.Close cancel; store calls
//     use it, since go-imap's Session methods take none. go-imap recovers panics per connection; the
//     server logs them and counts them (tests and the fuzzer assert none).
//   - The view. A selected session keeps the UIDs of the messages its client knows, in
//     sequence-number order; sequence numbers and "*" resolve against it, and commands only touch
//     messages in it. It changes only when the client is told: EXISTS, EXPUNGE and FETCH FLAGS after a
//     command (go-imap polls after each), during IDLE, and the session's own EXPUNGE and MOVE
//     responses. go-imap's MailboxTracker/SessionTracker are not used: they keep one shared numbering
//     per mailbox that must be fed synchronously and panic when it disagrees with an update, while the
//     store already gives each session an ordered, bounded change stream; a view per session is the
//     simpler fit.
//   - Store changes to responses. SELECT subscribes to the store's change bus, then lists the mailbox;
//     changes at or below the listing's MODSEQ are dropped (the store's snapshot rule). ChangeAdd
//     becomes EXISTS, ChangeExpunge EXPUNGE (from the highest sequence number down, never during FETCH,
//     STORE or SEARCH by sequence number: RFC 9051 §7.5.1), ChangeFlags FETCH (UID FLAGS) coalesced to
//     the newest per message, ChangeMailboxKeywords FLAGS, and ChangeMailboxDelete EXPUNGE for every
//     message. IDLE wakes on the listener's Ready channel, so a delivery through the store reaches an
//     idling client at once. If the listener overflows (or a session lets too many changes pile up),
//     the session rebuilds its view from a fresh listing and sends the difference.
//   - No echo. The store broadcasts before a write returns, so after its own STORE (or the \Seen of a
//     FETCH BODY[]) a session takes the changes up to its write's MODSEQ at once and drops its own
//     flag changes, which it has answered (or which .SILENT asked not to repeat); if another session
//     changed the same message first, a .SILENT store's result is kept so the client learns the
//     combined flags. Its own EXPUNGE and MOVE are no-ops when their changes arrive, since the UIDs
//     have left the view.
//   - FETCH reads flags, sizes and dates of all requested messages in one listing and bytes per
//     message only as far as needed (header, byte range, whole message). BODY[], BODY[HEADER],
//     BODY[TEXT] and partials are the stored bytes unchanged; BODYSTRUCTURE, BODY[part…] and
//     BINARY[part] come from internal/mimepart's bounded one-pass parse (at most 100 levels and
//     10,000 parts; a part beyond is an opaque application/octet-stream leaf), never from go-imap's
//     Extract helpers, whose nested readers cost depth × size (a 20,000-level mail took 49 s). A
//     FETCH stops between messages once the session's context is cancelled or the client has closed
//     the connection (cmdConn.gone).
//   - SEARCH maps go-imap's criteria to store.SearchCriteria one to one, after turning sequence sets,
//     "*" and "$" into UID sets from the view; results are limited to the view.
//   - cmdConn (cmdconn.go) reads the client's command lines ahead of go-imap (v2.0.0-beta.8) and
//     answers what go-imap gets wrong before it sees them: overlong lines, deep nesting, missing tags,
//     bad sequence sets and search keys, invalid modified UTF-7 names, unknown commands before login
//     (BAD, BYE after three, as Dovecot) and ID. go-imap gets the client's bytes unchanged, a line at
//     a time. It also puts the origin into partial BINARY items go-imap writes without it.
//   - Differences from Dovecot: TestDovecotDifferential runs Debian's dovecot-imapd on loopback and
//     compares every command; knownDifferences lists what still differs and why.
//   - Errors: store errors become NO with RFC 5530 codes ([NONEXISTENT], [TRYCREATE], [ALREADYEXISTS],
//     [CANNOT], …) and fixed texts; unexpected ones are logged and answered NO [SERVERBUG]. Logs never
//     hold message content or passwords (go-imap's protocol trace is never enabled).
package imapserver
