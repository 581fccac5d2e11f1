-- A subscription's failed attempts by time, for the daily error log
-- (GET …/webhookSubscription/{id}/{yyyy-MM-dd}: attempt-repository.ts's failedOnly read), which the
-- console's subscription page loads on every view. Without it the log was found by reading every
-- attempt the subscription made that day and keeping the few that failed: a healthy ONE_BY_ONE
-- subscription makes about a million delivered attempts a day, and its empty error log then took
-- 0.6 s (the page and its capped count each read them all; measured on the database of
-- `npm run bench -- console` with a million delivered attempts added to one subscription; 0.3 ms
-- with this index). Partial: only attempts that did not deliver, which are few, so recording a
-- delivered attempt costs nothing more.
CREATE INDEX delivery_attempts_failed ON delivery_attempts (subscription_id, attempted_at)
  WHERE outcome <> 'DELIVERED';
