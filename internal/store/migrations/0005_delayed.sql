-- 0005: a recipient may be 'delayed' (protocol.md §10.2, sender rule 3): its message's lifetime is over
-- without a receipt, a delay notice (RFC 3464 Action: delayed) has been filed, and a late receipt is
-- still accepted until next_attempt, the end of the grace period. Delayed recipients are due (the
-- final failure), so the due index covers them.
DROP INDEX outbox_rcpt_due;
CREATE INDEX outbox_rcpt_due ON outbox_rcpt (next_attempt)
	WHERE state IN ('pending', 'sealed', 'published', 'delayed');
