// Package chat owns live chat: the chat content of envelopes (protocol.md §10.3: texts, typing and
// read notices, group membership changes), the deterministic computation of a group's state from its
// signed changes (Fold), the form in which chat messages are filed in the Chats mailbox (RFC 5322
// messages with Chat-Version and Chat-Conversation-ID, so mail clients read them too), and the Service
// that the front doors (web API, CLI) use: conversations, history, send, groups, read, typing, and a
// stream of events.
//
// Implementation notes:
//   - Mail and chat are two views of one store: a chat message is a message in Chats whose
//     conversation_id column names its conversation; the store's conversation table holds what the
//     mailbox cannot (a 1:1 chat's peer, a group's computed state) and conversation_change each
//     group's log of changes.
//   - Sending: Send and the membership changes file the user's copy in Chats and enqueue the chat
//     content in the outbox in one store transaction (store.Tx.Submit with OutboxNew.Content), so a
//     2xx from the API means both are on disk. The outbox seals a chat item with its creation time as
//     the sent time, so every member orders a change the same way (Fold).
//   - Receiving: HandleChat (the inbox's ChatHandler) claims the envelope's replay key, records a change
//     and recomputes the group, and files the message, all in one transaction; a duplicate is
//     receipted again. Typing and read notices are not filed and not receipted; they go out through
//     outbox.SendNote in the background (Notes), and their loss loses nothing.
//   - Delivery and read status of the user's messages come from the outbox's recipients (their state,
//     and ReadAt from read notices) and the keywords $Delivered and $Read on the Chats copy.
//   - Events: Run turns store changes (a message added to Chats, flags, outbox states, conversation
//     changes) into Events; typing events are pushed by HandleChat. Each subscriber has a buffer of
//     256 events; one that falls behind loses events and then receives "resync". s.mu guards the
//     subscribers and the typing rate limit; nothing else in the Service is mutable.
package chat
