//! The decisions of buying one line, as pure functions the order workflow drives: how an attempt
//! at a supplier goes on (bought, next supplier, retry after a backoff, or verify before failing
//! over), which supplier comes next in a round over the ranked candidates, and what a round that
//! bought nothing leads to (ask the customer about a higher price, ask them about the line, or
//! park for an operator). The workflow performs the steps; these functions only decide, so every
//! rule is tested here without a server.

use super::Candidate;
use std::collections::VecDeque;

/// Attempts at one supplier before failing over from it.
pub const ATTEMPTS_PER_SUPPLIER: u32 = 3;

/// Price changes a line may put to the customer; a supplier that keeps raising its price after
/// that is an operator's problem, not the customer's.
pub const MAX_PRICE_CHANGES_PER_LINE: u32 = 3;

/// How a supplier is bought from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// Through the marketplace's buyer API, attempt by attempt.
    Api,
    /// By a purchaser (a person) through a task: Pinduoduo has no buyer API.
    Assisted,
}

pub fn channel(candidate: &Candidate) -> Channel {
    match candidate.platform {
        crate::order::Platform::Pinduoduo => Channel::Assisted,
        crate::order::Platform::Alibaba1688 | crate::order::Platform::Taobao => Channel::Api,
    }
}

/// How one purchase attempt ended, as far as what comes next is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    Bought,
    /// The supplier cannot serve the line (out of stock, listing gone, no buyer account).
    Refused,
    /// The supplier asks more than the line may cost.
    PriceAbove,
    /// The attempt failed without an answer (timeout, error): an order may or may not exist.
    Failed,
}

/// What follows an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterAttempt {
    Bought,
    NextSupplier,
    /// Try the same supplier again after `backoff_secs`.
    Retry {
        backoff_secs: u64,
    },
    /// The last attempt failed: confirm the supplier holds no order before failing over, so a
    /// timeout after commit never buys the line twice.
    VerifyThenFailOver,
}

/// The decision after attempt number `attempt` (1-based) at a supplier.
pub fn after_attempt(attempt: u32, result: Attempt) -> AfterAttempt {
    match result {
        Attempt::Bought => AfterAttempt::Bought,
        Attempt::Refused | Attempt::PriceAbove => AfterAttempt::NextSupplier,
        Attempt::Failed if attempt < ATTEMPTS_PER_SUPPLIER => AfterAttempt::Retry {
            backoff_secs: 1u64 << attempt.saturating_sub(1).min(32),
        },
        Attempt::Failed => AfterAttempt::VerifyThenFailOver,
    }
}

/// One pass over the ranked suppliers of a line: which comes next, and what each refused with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Round {
    left: VecDeque<Candidate>,
    /// Why each supplier tried did not sell, in the order tried.
    tried: Vec<String>,
    /// The cheapest supplier that refused only on price, and its unit price (fen).
    cheapest_above: Option<(Candidate, i64)>,
}

/// What a round that bought nothing leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoundEnd {
    /// Only a higher price is left: ask the customer to pay the rise to `new_unit_fen`.
    AskPrice {
        candidate: Candidate,
        new_unit_fen: i64,
    },
    /// A line of a multi-line order: the customer drops it or cancels everything.
    AskAboutLine { why: String },
    /// Wait in NeedsOperator for a retry (with overrides) or a cancellation.
    Park { why: String },
}

impl Round {
    /// A round over `ranked` (best first, as procurement ranks them).
    pub fn new(ranked: Vec<Candidate>) -> Self {
        Round {
            left: ranked.into(),
            tried: Vec::new(),
            cheapest_above: None,
        }
    }

    /// The next supplier to try, best first; `None` once every one was tried or the round was
    /// ended early.
    pub fn next_candidate(&mut self) -> Option<Candidate> {
        self.left.pop_front()
    }

    /// `who` cannot serve the line: on to the next supplier.
    pub fn refused(&mut self, who: &str, reason: &str) {
        self.tried.push(format!("{who}: {reason}"));
    }

    /// `who` asks `quoted_unit_fen` per unit, above `limit_unit_fen`: on to the next supplier,
    /// remembering the cheapest such one (the first of equals) for a question to the customer.
    pub fn priced_above(
        &mut self,
        candidate: &Candidate,
        who: &str,
        quoted_unit_fen: i64,
        limit_unit_fen: i64,
    ) {
        self.tried.push(format!(
            "{who}: price {quoted_unit_fen} fen above {limit_unit_fen} fen"
        ));
        if self
            .cheapest_above
            .as_ref()
            .is_none_or(|(_, p)| quoted_unit_fen < *p)
        {
            self.cheapest_above = Some((candidate.clone(), quoted_unit_fen));
        }
    }

    /// Every attempt at `who` failed and the supplier confirmed it holds no order.
    pub fn failed_over(&mut self, who: &str) {
        self.tried
            .push(format!("{who}: {ATTEMPTS_PER_SUPPLIER} attempts failed"));
    }

    /// Whether `who` holds an order could not be confirmed: failing over could buy the line
    /// twice, so the round ends here.
    pub fn unconfirmed(&mut self, who: &str, error: &str) {
        self.tried.push(format!(
            "{who}: could not confirm whether an order exists ({error})"
        ));
        self.left.clear();
    }

    /// The assisted channel gave up on `who` (the purchaser task expired): an operator decides,
    /// so the round ends here.
    pub fn assisted_failed(&mut self, who: &str, why: &str) {
        self.tried.push(format!("{who}: {why}"));
        self.left.clear();
    }

    /// The round bought nothing: ask about the price while the customer has been asked fewer
    /// than [`MAX_PRICE_CHANGES_PER_LINE`] times, else ask about the line (an order of several
    /// lines) or park, with every supplier's refusal as the reason.
    pub fn end(mut self, price_changes_asked: u32, lines_in_order: usize) -> RoundEnd {
        if let Some((candidate, new_unit_fen)) = self.cheapest_above.take() {
            if price_changes_asked < MAX_PRICE_CHANGES_PER_LINE {
                return RoundEnd::AskPrice {
                    candidate,
                    new_unit_fen,
                };
            }
            self.tried.push(format!(
                "the price rose again after {MAX_PRICE_CHANGES_PER_LINE} price changes the customer accepted"
            ));
        }
        let why = if self.tried.is_empty() {
            "no supplier offers this item".to_owned()
        } else {
            self.tried.join("; ")
        };
        if lines_in_order > 1 {
            RoundEnd::AskAboutLine { why }
        } else {
            RoundEnd::Park { why }
        }
    }
}

/// What the customer has agreed to pay per unit of a line, and how often they were asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CustomerTerms {
    /// The unit price (fen) the customer has paid for: the quote's, or an accepted change's.
    pub covered_unit_fen: i64,
    pub price_changes_asked: u32,
}

impl CustomerTerms {
    pub fn new(quoted_unit_fen: i64) -> Self {
        CustomerTerms {
            covered_unit_fen: quoted_unit_fen,
            price_changes_asked: 0,
        }
    }

    /// A price change is put to the customer.
    pub fn asked(&mut self) {
        self.price_changes_asked += 1;
    }

    /// The customer paid for `new_unit_fen` per unit; a later rise is charged from there.
    pub fn accepted(&mut self, new_unit_fen: i64) {
        self.covered_unit_fen = self.covered_unit_fen.max(new_unit_fen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::Platform;
    use proptest::prelude::*;

    fn c(platform: Platform, id: &str) -> Candidate {
        Candidate {
            platform,
            offer_id: id.into(),
            spec_id: "s".into(),
            unit_price_fen: 1_000,
            domestic_shipping_fen: 0,
            reliability_bps: 10_000,
            stock: None,
        }
    }

    #[test]
    fn a_failing_supplier_is_retried_with_doubling_backoff_then_verified() {
        let moves: Vec<_> = (1..=ATTEMPTS_PER_SUPPLIER)
            .map(|a| after_attempt(a, Attempt::Failed))
            .collect();
        assert_eq!(
            moves,
            [
                AfterAttempt::Retry { backoff_secs: 1 },
                AfterAttempt::Retry { backoff_secs: 2 },
                AfterAttempt::VerifyThenFailOver
            ]
        );
        assert_eq!(
            after_attempt(1, Attempt::Refused),
            AfterAttempt::NextSupplier
        );
        assert_eq!(
            after_attempt(2, Attempt::PriceAbove),
            AfterAttempt::NextSupplier
        );
        assert_eq!(after_attempt(3, Attempt::Bought), AfterAttempt::Bought);
    }

    #[test]
    fn pinduoduo_goes_through_a_purchaser() {
        assert_eq!(channel(&c(Platform::Pinduoduo, "p")), Channel::Assisted);
        assert_eq!(channel(&c(Platform::Alibaba1688, "a")), Channel::Api);
        assert_eq!(channel(&c(Platform::Taobao, "t")), Channel::Api);
    }

    #[test]
    fn the_cheapest_rise_is_put_to_the_customer() {
        let (a, b, t) = (
            c(Platform::Alibaba1688, "a"),
            c(Platform::Taobao, "b"),
            c(Platform::Taobao, "t"),
        );
        let mut round = Round::new(vec![a.clone(), b.clone(), t.clone()]);
        round.next_candidate();
        round.priced_above(&a, "line 1 1688 a", 1_300, 1_100);
        round.next_candidate();
        round.priced_above(&b, "line 1 taobao b", 1_200, 1_100);
        round.next_candidate();
        round.priced_above(&t, "line 1 taobao t", 1_200, 1_100);
        assert_eq!(round.next_candidate(), None);
        assert_eq!(
            round.end(0, 1),
            RoundEnd::AskPrice {
                candidate: b,
                new_unit_fen: 1_200
            }
        );
    }

    #[test]
    fn after_the_last_price_change_an_operator_decides() {
        let a = c(Platform::Alibaba1688, "a");
        let mut round = Round::new(vec![a.clone()]);
        round.priced_above(&a, "line 1 1688 a", 1_300, 1_100);
        assert_eq!(
            round.end(MAX_PRICE_CHANGES_PER_LINE, 1),
            RoundEnd::Park {
                why: "line 1 1688 a: price 1300 fen above 1100 fen; the price rose again after 3 \
                      price changes the customer accepted"
                    .into()
            }
        );
    }

    #[test]
    fn a_line_of_several_asks_the_customer_and_names_every_refusal() {
        let mut round = Round::new(vec![c(Platform::Taobao, "t")]);
        round.next_candidate();
        round.refused("line 2 taobao t", "out of stock");
        assert_eq!(
            round.end(0, 2),
            RoundEnd::AskAboutLine {
                why: "line 2 taobao t: out of stock".into()
            }
        );
        assert_eq!(
            Round::new(Vec::new()).end(0, 1),
            RoundEnd::Park {
                why: "no supplier offers this item".into()
            }
        );
    }

    #[test]
    fn an_unconfirmed_supplier_or_an_expired_task_ends_the_round() {
        let cands = vec![c(Platform::Alibaba1688, "a"), c(Platform::Taobao, "t")];
        let mut round = Round::new(cands.clone());
        round.next_candidate();
        round.unconfirmed("line 1 1688 a", "timeout");
        assert_eq!(round.next_candidate(), None);
        let mut round = Round::new(cands);
        round.next_candidate();
        round.assisted_failed("line 1 pinduoduo p", "purchaser task t not completed");
        assert_eq!(round.next_candidate(), None);
    }

    #[test]
    fn accepted_changes_raise_what_is_covered_never_lower_it() {
        let mut terms = CustomerTerms::new(1_000);
        terms.asked();
        terms.accepted(1_200);
        terms.asked();
        terms.accepted(1_100);
        assert_eq!(terms.covered_unit_fen, 1_200);
        assert_eq!(terms.price_changes_asked, 2);
    }

    /// What a supplier does in a generated round.
    #[derive(Clone, Debug)]
    enum Answer {
        Refuses,
        Quotes(i64),
        FailsOver,
        Unconfirmed,
    }

    fn any_answer() -> impl Strategy<Value = Answer> {
        prop_oneof![
            Just(Answer::Refuses),
            (1i64..5_000).prop_map(Answer::Quotes),
            Just(Answer::FailsOver),
            Just(Answer::Unconfirmed),
        ]
    }

    proptest! {
        #[test]
        fn a_supplier_is_tried_at_most_attempts_times(results in proptest::collection::vec(0u8..4, 1..10)) {
            let mut attempt = 1;
            for r in results {
                let r = [Attempt::Bought, Attempt::Refused, Attempt::PriceAbove, Attempt::Failed][r as usize];
                match after_attempt(attempt, r) {
                    AfterAttempt::Retry { backoff_secs } => {
                        prop_assert_eq!(r, Attempt::Failed);
                        prop_assert_eq!(backoff_secs, 1 << (attempt - 1));
                        attempt += 1;
                        prop_assert!(attempt <= ATTEMPTS_PER_SUPPLIER);
                    }
                    AfterAttempt::VerifyThenFailOver => {
                        prop_assert_eq!((r, attempt), (Attempt::Failed, ATTEMPTS_PER_SUPPLIER));
                        break;
                    }
                    AfterAttempt::Bought => { prop_assert_eq!(r, Attempt::Bought); break; }
                    AfterAttempt::NextSupplier => { prop_assert_ne!(r, Attempt::Failed); break; }
                }
            }
        }

        #[test]
        fn a_round_tries_suppliers_best_first_once_and_decides_like_the_rules(
            answers in proptest::collection::vec(any_answer(), 0..8),
            asked in 0u32..5,
            lines in 1usize..4,
        ) {
            let cands: Vec<Candidate> = (0..answers.len())
                .map(|i| c(Platform::Taobao, &format!("o{i}")))
                .collect();
            let mut round = Round::new(cands.clone());
            let mut seen = Vec::new();
            let mut cheapest: Option<(usize, i64)> = None;
            while let Some(cand) = round.next_candidate() {
                let i = seen.len();
                prop_assert_eq!(&cand, &cands[i]);
                seen.push(cand.clone());
                let who = format!("s{i}");
                match answers[i] {
                    Answer::Refuses => round.refused(&who, "out of stock"),
                    Answer::Quotes(p) => {
                        round.priced_above(&cand, &who, p, 0);
                        if cheapest.is_none_or(|(_, q)| p < q) {
                            cheapest = Some((i, p));
                        }
                    }
                    Answer::FailsOver => round.failed_over(&who),
                    Answer::Unconfirmed => round.unconfirmed(&who, "timeout"),
                }
            }
            // Every supplier up to the first unconfirmed one, in order, and none after it.
            let stop = answers.iter().position(|a| matches!(a, Answer::Unconfirmed));
            prop_assert_eq!(seen.len(), stop.map_or(answers.len(), |s| s + 1));
            let end = round.end(asked, lines);
            prop_assert_eq!(
                matches!(end, RoundEnd::AskAboutLine { .. }),
                lines > 1 && !matches!(end, RoundEnd::AskPrice { .. })
            );
            match end {
                RoundEnd::AskPrice { candidate, new_unit_fen } => {
                    let (i, p) = cheapest.expect("asked only about a quoted price");
                    prop_assert!(asked < MAX_PRICE_CHANGES_PER_LINE);
                    prop_assert_eq!((candidate, new_unit_fen), (cands[i].clone(), p));
                }
                RoundEnd::AskAboutLine { why } | RoundEnd::Park { why } => {
                    // Only an order of several lines asks about a line; one line parks.
                    prop_assert!(cheapest.is_none() || asked >= MAX_PRICE_CHANGES_PER_LINE);
                    prop_assert!(!why.is_empty());
                    prop_assert_eq!(why.contains("price rose again"), cheapest.is_some());
                    for i in 0..seen.len() {
                        let named = format!("s{i}: ");
                        prop_assert!(why.contains(&named), "{} names s{}", why, i);
                    }
                }
            }
        }
    }
}
