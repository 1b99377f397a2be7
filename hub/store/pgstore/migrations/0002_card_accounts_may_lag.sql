-- 0002: card purse accounts may go below zero in the hub's books. The card
-- keeps its purse non-negative (its TAC proves every purchase), and a load
-- can reach the hub after a later purchase (another terminal, a retry).
-- See store.CardPrefix.
UPDATE accounts SET allow_negative = true WHERE starts_with(id, 'card/') AND NOT allow_negative;
