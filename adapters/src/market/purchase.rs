//! The exactly-once purchase, written once for every marketplace with a buyer API.

use super::{
    BuyerMarketplace, BuyerOrder, MarketError, OrderState, PayAnswer, PurchaseRequest, Purchased,
    check_quote,
};

/// Buy exactly once, however often this is called with the same request:
/// 1. look the order up by our external id and adopt it if an earlier attempt made it (before
///    previewing, because our own order may hold the last units);
/// 2. otherwise preview, refuse unit prices above a line's maximum or a total above the
///    request's, and create for the previewed quote; a create without a definite answer (a
///    timeout or a transient failure: it may have committed) is looked up by the external id
///    again before anything else happens, and a partial order is refused;
/// 3. pay while the order waits for payment, reading the order before every pay request (a pay
///    call may report failure after debiting, or not answer at all); an attempt whose answer
///    is unknown keeps its attempt key, one the marketplace declined gets a new one; an order
///    above the request's total is never paid.
#[tracing::instrument(skip(market, req), fields(market = market.name(), out_order_id = %req.out_order_id))]
pub async fn purchase<M: BuyerMarketplace + ?Sized>(
    market: &M,
    req: &PurchaseRequest,
) -> Result<Purchased, MarketError> {
    req.validate()?;
    let current = |found: BuyerOrder| market.found_is_current().then_some(found);
    let (order_id, known, adopted) = match market.find_by_external_id(&req.out_order_id).await? {
        Some(existing) => {
            tracing::info!(order_id = %existing.order_id, state = ?existing.state, "adopting existing order");
            (existing.order_id.clone(), current(existing), true)
        }
        None => {
            let quote = market.preview(req).await?;
            check_quote(req, |l| quote.unit_price(l), quote.total_fen)?;
            match market.create(req, &quote).await {
                Ok(created) if !created.failed_offers.is_empty() => {
                    return Err(MarketError::Rejected {
                        code: "PARTIAL_ORDER".into(),
                        message: format!(
                            "order {} was created without offers {:?}",
                            created.order_id, created.failed_offers
                        ),
                    });
                }
                Ok(created) => (created.order_id, None, false),
                Err(e @ (MarketError::Timeout | MarketError::Transient(_))) => {
                    tracing::warn!(error = %e, "create outcome unknown; looking the order up by our external id");
                    match market.find_by_external_id(&req.out_order_id).await? {
                        Some(found) => (found.order_id.clone(), current(found), true),
                        None => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    };
    let amount_paid_fen = settle(market, &order_id, req, known).await?;
    Ok(Purchased {
        marketplace_order_id: order_id,
        amount_paid_fen,
        adopted,
    })
}

/// Pay the order unless it is paid already; returns the amount paid (fen). `known` is a
/// current read of the order, if the caller has one.
async fn settle<M: BuyerMarketplace + ?Sized>(
    market: &M,
    order_id: &str,
    req: &PurchaseRequest,
    mut known: Option<BuyerOrder>,
) -> Result<i64, MarketError> {
    // ≤ 64 printable characters (1688's gateway limit); unique per pay attempt.
    let new_key = || format!("pay-{}", uuid::Uuid::new_v4().simple());
    let mut attempt_key = new_key();
    let mut last = MarketError::Transient("payment not confirmed".into());
    for attempt in 1..=market.max_pay_attempts().max(1) {
        let order = match known.take() {
            Some(o) => o,
            None => market.read(order_id, &req.out_order_id).await?,
        };
        match &order.state {
            OrderState::Paid => return Ok(order.total_fen),
            OrderState::AwaitingPayment => {}
            OrderState::Closed(why) => return Err(why.clone()),
            OrderState::Building => {
                return Err(MarketError::Transient(format!(
                    "{} order {order_id} is still being built",
                    market.name()
                )));
            }
            OrderState::Other(state) => {
                return Err(MarketError::invalid_response(format!(
                    "order {order_id} in state {state}"
                )));
            }
        }
        if order.total_fen > req.max_total_fen {
            return Err(MarketError::PriceAboveTolerance {
                quoted: order.total_fen,
                max: req.max_total_fen,
            });
        }
        match market.pay(&order, &attempt_key).await {
            Ok(PayAnswer::Paid) => return Ok(order.total_fen),
            Ok(PayAnswer::Declined(e)) => {
                tracing::warn!(order_id, attempt, error = %e, "pay declined; re-reading the order");
                // That key's answer is recorded as a failure: a new attempt needs a new key.
                attempt_key = new_key();
                last = e;
            }
            // The request may still be processed: keep its key so a repeat cannot pay twice.
            Err(e @ (MarketError::Timeout | MarketError::Transient(_))) => {
                tracing::warn!(order_id, attempt, error = %e, "pay outcome unknown; re-reading the order");
                last = e;
            }
            Err(e) => return Err(e),
        }
    }
    let order = market.read(order_id, &req.out_order_id).await?;
    if order.state == OrderState::Paid {
        Ok(order.total_fen)
    } else {
        Err(last)
    }
}

/// The protocol against an in-memory marketplace that scripts every ambiguity a real one
/// shows: no HTTP, no timing. Every scenario checks the two invariants (one order per external
/// id, money taken at most once) and the outcome the caller sees.
#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use procure_domain::Secret;

    use super::*;
    use crate::http::BuildError;
    use crate::market::{
        CancelOutcome, CargoLine, Created, DeliveryAddress, LogisticsInfo, MarketFuture, Quote,
        QuotedLine,
    };

    const OUT_ID: &str = "ord-1-L1-0000abcd";
    const UNIT: i64 = 4550;
    const CARRIAGE: i64 = 800;

    /// What one create call does.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum CreateFault {
        /// Commits and answers.
        Answer,
        /// Commits, then no answer in time.
        TimeoutAfterCommit,
        /// Commits, then the answer is lost (connection reset: a transient failure).
        LostAnswer,
        /// No answer in time, and the order only shows up in reads after the next lookup
        /// (the marketplace commits it late).
        Late,
        /// Commits an order that lacks the request's offer.
        Partial,
    }

    /// What one pay call does.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum PayFault {
        Answer,
        /// Debits, then reports failure (1688's `paySuccess=false` after debiting).
        DeclinedAfterDebit,
        /// Reports failure without debiting.
        DeclinedNoDebit,
        /// Debits, then no answer in time.
        TimeoutAfterDebit,
        /// Debits, then the answer is lost.
        LostAfterDebit,
        /// No answer in time, nothing debited.
        TimeoutNoDebit,
    }

    #[derive(Clone, Debug)]
    struct Order {
        id: String,
        out_id: String,
        total: i64,
        /// Visible to lookups and reads.
        visible: bool,
        paid: bool,
        closed: Option<MarketError>,
    }

    #[derive(Default)]
    struct World {
        unit_price: i64,
        orders: Vec<Order>,
        creates: VecDeque<CreateFault>,
        pays: VecDeque<PayFault>,
        /// Every pay request's attempt key, and every debit's order id.
        pay_keys: Vec<String>,
        debits: Vec<String>,
        /// Keys whose request debited: a repeat of such a key is answered, never debited.
        debited_keys: Vec<String>,
        calls: Vec<&'static str>,
    }

    struct Fake {
        world: Mutex<World>,
        found_is_current: bool,
    }

    fn timeout<T>() -> Result<T, MarketError> {
        Err(MarketError::Timeout)
    }

    impl Fake {
        fn new(found_is_current: bool) -> Self {
            Fake {
                world: Mutex::new(World {
                    unit_price: UNIT,
                    ..World::default()
                }),
                found_is_current,
            }
        }

        fn with(self, f: impl FnOnce(&mut World)) -> Self {
            f(&mut self.world.lock().unwrap());
            self
        }

        fn view(o: &Order) -> BuyerOrder {
            let state = match (&o.closed, o.paid) {
                (Some(why), _) => OrderState::Closed(why.clone()),
                (None, true) => OrderState::Paid,
                (None, false) => OrderState::AwaitingPayment,
            };
            BuyerOrder {
                order_id: o.id.clone(),
                state,
                total_fen: o.total,
            }
        }

        fn find_now(&self, out_id: &str) -> Result<Option<BuyerOrder>, MarketError> {
            let mut w = self.world.lock().unwrap();
            w.calls.push("find");
            let found = w.orders.iter().find(|o| o.out_id == out_id).cloned();
            // A late order becomes visible after a lookup that missed it.
            if let Some(o) = w
                .orders
                .iter_mut()
                .find(|o| o.out_id == out_id && !o.visible)
            {
                o.visible = true;
                return Ok(None);
            }
            Ok(found.map(|o| Self::view(&o)))
        }

        fn create_now(&self, req: &PurchaseRequest, quote: &Quote) -> Result<Created, MarketError> {
            let mut w = self.world.lock().unwrap();
            w.calls.push("create");
            let fault = w.creates.pop_front().unwrap_or(CreateFault::Answer);
            assert_eq!(
                quote.total_fen,
                w.unit_price * 2 + CARRIAGE,
                "created for the quote"
            );
            let id = match w.orders.iter().find(|o| o.out_id == req.out_order_id) {
                Some(o) => o.id.clone(),
                None => {
                    let id = format!("{}", 9000 + w.orders.len());
                    w.orders.push(Order {
                        id: id.clone(),
                        out_id: req.out_order_id.clone(),
                        total: quote.total_fen,
                        visible: fault != CreateFault::Late,
                        paid: false,
                        closed: None,
                    });
                    id
                }
            };
            match fault {
                CreateFault::Answer => Ok(Created {
                    order_id: id,
                    failed_offers: vec![],
                }),
                CreateFault::Partial => Ok(Created {
                    order_id: id,
                    failed_offers: vec![req.lines[0].offer_id.clone()],
                }),
                CreateFault::TimeoutAfterCommit | CreateFault::Late => timeout(),
                CreateFault::LostAnswer => Err(MarketError::Transient("connection reset".into())),
            }
        }

        fn read_now(&self, order_id: &str) -> Result<BuyerOrder, MarketError> {
            let mut w = self.world.lock().unwrap();
            w.calls.push("read");
            let o = w.orders.iter().find(|o| o.id == order_id && o.visible);
            o.map(Self::view).ok_or_else(|| MarketError::Rejected {
                code: "ORDER_NOT_EXIST".into(),
                message: order_id.into(),
            })
        }

        fn pay_now(&self, order: &BuyerOrder, key: &str) -> Result<PayAnswer, MarketError> {
            let mut w = self.world.lock().unwrap();
            w.calls.push("pay");
            w.pay_keys.push(key.to_owned());
            let repeat = w.debited_keys.iter().any(|k| k == key);
            let fault = w.pays.pop_front().unwrap_or(PayFault::Answer);
            let o = w
                .orders
                .iter_mut()
                .find(|o| o.id == order.order_id)
                .unwrap();
            assert_eq!(order.total_fen, o.total, "paid for the order's total");
            if o.paid || repeat {
                return Ok(PayAnswer::Paid);
            }
            let debits = !matches!(fault, PayFault::DeclinedNoDebit | PayFault::TimeoutNoDebit);
            if debits {
                o.paid = true;
                let id = o.id.clone();
                w.debits.push(id);
                w.debited_keys.push(key.to_owned());
            }
            match fault {
                PayFault::Answer => Ok(PayAnswer::Paid),
                PayFault::DeclinedAfterDebit | PayFault::DeclinedNoDebit => Ok(
                    PayAnswer::Declined(MarketError::Transient("pay not confirmed".into())),
                ),
                PayFault::TimeoutAfterDebit | PayFault::TimeoutNoDebit => timeout(),
                PayFault::LostAfterDebit => Err(MarketError::Transient("connection reset".into())),
            }
        }

        /// The invariants every scenario keeps: at most one order for our id, at most one
        /// debit per order.
        fn assert_exactly_once(&self) {
            let w = self.world.lock().unwrap();
            let ours = w.orders.iter().filter(|o| o.out_id == OUT_ID).count();
            assert!(ours <= 1, "{ours} orders for one external id");
            for o in &w.orders {
                let n = w.debits.iter().filter(|d| **d == o.id).count();
                assert!(n <= 1, "order {} debited {n} times", o.id);
            }
        }

        fn debits(&self) -> usize {
            self.world.lock().unwrap().debits.len()
        }

        fn orders(&self) -> usize {
            self.world.lock().unwrap().orders.len()
        }

        fn calls(&self) -> Vec<&'static str> {
            self.world.lock().unwrap().calls.clone()
        }

        fn pay_keys(&self) -> Vec<String> {
            self.world.lock().unwrap().pay_keys.clone()
        }
    }

    impl BuyerMarketplace for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }

        fn find_by_external_id<'a>(
            &'a self,
            out_order_id: &'a str,
        ) -> MarketFuture<'a, Option<BuyerOrder>> {
            Box::pin(async move { self.find_now(out_order_id) })
        }

        fn found_is_current(&self) -> bool {
            self.found_is_current
        }

        fn preview<'a>(&'a self, req: &'a PurchaseRequest) -> MarketFuture<'a, Quote> {
            Box::pin(async move {
                let mut w = self.world.lock().unwrap();
                w.calls.push("preview");
                let unit = w.unit_price;
                Ok(Quote {
                    lines: req
                        .lines
                        .iter()
                        .map(|l| QuotedLine {
                            offer_id: l.offer_id.clone(),
                            spec_id: l.spec_id.clone(),
                            unit_price_fen: unit,
                        })
                        .collect(),
                    total_fen: unit * 2 + CARRIAGE,
                })
            })
        }

        fn create<'a>(
            &'a self,
            req: &'a PurchaseRequest,
            quote: &'a Quote,
        ) -> MarketFuture<'a, Created> {
            Box::pin(async move { self.create_now(req, quote) })
        }

        fn read<'a>(
            &'a self,
            order_id: &'a str,
            _out_order_id: &'a str,
        ) -> MarketFuture<'a, BuyerOrder> {
            Box::pin(async move { self.read_now(order_id) })
        }

        fn pay<'a>(
            &'a self,
            order: &'a BuyerOrder,
            attempt_key: &'a str,
        ) -> MarketFuture<'a, PayAnswer> {
            Box::pin(async move { self.pay_now(order, attempt_key) })
        }

        fn max_pay_attempts(&self) -> u32 {
            3
        }

        fn logistics<'a>(&'a self, _order_id: &'a str) -> MarketFuture<'a, Vec<LogisticsInfo>> {
            Box::pin(async { Ok(Vec::new()) })
        }

        fn cancel<'a>(
            &'a self,
            _order_id: &'a str,
            _remark: &'a str,
        ) -> MarketFuture<'a, CancelOutcome> {
            Box::pin(async { unreachable!("the purchase never cancels") })
        }

        fn for_account(
            &self,
            _access_token: Option<Secret>,
        ) -> Result<Arc<dyn BuyerMarketplace>, BuildError> {
            unreachable!("the purchase uses the client it is given")
        }
    }

    fn request(max_unit: i64, max_total: i64) -> PurchaseRequest {
        PurchaseRequest {
            out_order_id: OUT_ID.into(),
            lines: vec![CargoLine {
                offer_id: "610001".into(),
                spec_id: "s1".into(),
                quantity: 2,
                max_unit_price_fen: max_unit,
            }],
            address: DeliveryAddress {
                full_name: "n".into(),
                mobile: "m".into(),
                post_code: "p".into(),
                province: "pr".into(),
                city: "c".into(),
                area: "a".into(),
                town: String::new(),
                address: "x".into(),
            },
            max_total_fen: max_total,
        }
    }

    const TOTAL: i64 = UNIT * 2 + CARRIAGE;

    fn bought(adopted: bool) -> Purchased {
        Purchased {
            marketplace_order_id: "9000".into(),
            amount_paid_fen: TOTAL,
            adopted,
        }
    }

    /// Both ways a marketplace may read a found order: again, or as found.
    fn both_modes() -> [bool; 2] {
        [false, true]
    }

    #[tokio::test]
    async fn buys_once_and_a_repeat_adopts_without_paying_again() {
        for current in both_modes() {
            let m = Fake::new(current);
            let req = request(UNIT, TOTAL);
            assert_eq!(purchase(&m, &req).await, Ok(bought(false)));
            assert_eq!(purchase(&m, &req).await, Ok(bought(true)));
            m.assert_exactly_once();
            assert_eq!((m.orders(), m.debits()), (1, 1));
            let expected_repeat: &[&str] = if current {
                &["find"]
            } else {
                &["find", "read"]
            };
            let calls = m.calls();
            assert_eq!(calls[..5], ["find", "preview", "create", "read", "pay"]);
            assert_eq!(calls[5..], *expected_repeat, "found_is_current={current}");
        }
    }

    #[tokio::test]
    async fn a_create_that_committed_but_timed_out_is_adopted_not_repeated() {
        for fault in [CreateFault::TimeoutAfterCommit, CreateFault::LostAnswer] {
            for current in both_modes() {
                let m = Fake::new(current).with(|w| w.creates.push_back(fault));
                let p = purchase(&m, &request(UNIT, TOTAL)).await;
                assert_eq!(p, Ok(bought(true)), "{fault:?}");
                m.assert_exactly_once();
                assert_eq!((m.orders(), m.debits()), (1, 1), "{fault:?}");
                assert_eq!(
                    m.calls().iter().filter(|c| **c == "create").count(),
                    1,
                    "never created twice: {fault:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_late_create_fails_the_attempt_and_the_retry_adopts_it() {
        let m = Fake::new(false).with(|w| w.creates.push_back(CreateFault::Late));
        let req = request(UNIT, TOTAL);
        // The lookup after the timeout misses the order: the outcome stays unknown, nothing is
        // paid, and the caller retries (the error is retryable).
        let first = purchase(&m, &req).await;
        assert_eq!(first, Err(MarketError::Timeout));
        assert!(first.unwrap_err().is_retryable());
        assert_eq!(m.debits(), 0);
        // The retry finds the order the marketplace committed late: adopted, paid once.
        assert_eq!(purchase(&m, &req).await, Ok(bought(true)));
        m.assert_exactly_once();
        assert_eq!((m.orders(), m.debits()), (1, 1));
        assert_eq!(m.calls().iter().filter(|c| **c == "create").count(), 1);
    }

    #[tokio::test]
    async fn a_pay_that_debited_without_a_clear_answer_is_not_paid_again() {
        for fault in [
            PayFault::DeclinedAfterDebit,
            PayFault::TimeoutAfterDebit,
            PayFault::LostAfterDebit,
        ] {
            let m = Fake::new(false).with(|w| w.pays.push_back(fault));
            assert_eq!(
                purchase(&m, &request(UNIT, TOTAL)).await,
                Ok(bought(false)),
                "{fault:?}"
            );
            m.assert_exactly_once();
            assert_eq!(m.debits(), 1, "{fault:?}");
            assert_eq!(
                m.pay_keys().len(),
                1,
                "the re-read shows it paid: {fault:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_declined_pay_is_retried_with_a_new_key_an_unanswered_one_with_the_same() {
        let m = Fake::new(false).with(|w| w.pays.push_back(PayFault::DeclinedNoDebit));
        assert_eq!(purchase(&m, &request(UNIT, TOTAL)).await, Ok(bought(false)));
        let keys = m.pay_keys();
        assert_eq!(keys.len(), 2);
        assert_ne!(keys[0], keys[1], "a declined key is not reused");
        assert!(keys.iter().all(|k| k.starts_with("pay-") && k.len() <= 64));
        assert_eq!(m.debits(), 1);

        let m = Fake::new(false).with(|w| w.pays.push_back(PayFault::TimeoutNoDebit));
        assert_eq!(purchase(&m, &request(UNIT, TOTAL)).await, Ok(bought(false)));
        let keys = m.pay_keys();
        assert_eq!(keys.len(), 2);
        assert_eq!(
            keys[0], keys[1],
            "an unanswered request is repeated under its key"
        );
        assert_eq!(m.debits(), 1);
    }

    #[tokio::test]
    async fn pay_attempts_are_bounded_and_the_last_doubt_is_reported() {
        let m = Fake::new(false).with(|w| {
            w.pays.extend([PayFault::TimeoutNoDebit; 3]);
        });
        assert_eq!(
            purchase(&m, &request(UNIT, TOTAL)).await,
            Err(MarketError::Timeout)
        );
        assert_eq!(m.pay_keys().len(), 3);
        assert_eq!(m.debits(), 0);
        // The next call adopts the unpaid order and pays it: still one order, one debit.
        assert_eq!(purchase(&m, &request(UNIT, TOTAL)).await, Ok(bought(true)));
        m.assert_exactly_once();
        assert_eq!((m.orders(), m.debits()), (1, 1));
    }

    #[tokio::test]
    async fn prices_above_tolerance_create_nothing_and_pay_nothing() {
        let m = Fake::new(false).with(|w| w.unit_price = UNIT + 1);
        assert_eq!(
            purchase(&m, &request(UNIT, 99_999)).await,
            Err(MarketError::PriceAboveTolerance {
                quoted: UNIT + 1,
                max: UNIT
            })
        );
        assert_eq!(m.orders(), 0);
        assert_eq!(
            purchase(&Fake::new(false), &request(UNIT, TOTAL - 1)).await,
            Err(MarketError::PriceAboveTolerance {
                quoted: TOTAL,
                max: TOTAL - 1
            })
        );
        // An order an earlier attempt left, now above the total: adopted but never paid.
        let m = Fake::new(false).with(|w| {
            w.orders.push(Order {
                id: "77".into(),
                out_id: OUT_ID.into(),
                total: 20_000,
                visible: true,
                paid: false,
                closed: None,
            })
        });
        assert_eq!(
            purchase(&m, &request(UNIT, TOTAL)).await,
            Err(MarketError::PriceAboveTolerance {
                quoted: 20_000,
                max: TOTAL
            })
        );
        assert_eq!(m.debits(), 0);
        assert!(!m.calls().contains(&"create"));
    }

    #[tokio::test]
    async fn a_partial_or_closed_order_is_reported_not_paid_or_recreated() {
        let m = Fake::new(false).with(|w| w.creates.push_back(CreateFault::Partial));
        assert!(matches!(
            purchase(&m, &request(UNIT, TOTAL)).await,
            Err(MarketError::Rejected { code, .. }) if code == "PARTIAL_ORDER"
        ));
        assert_eq!(m.debits(), 0);

        let m = Fake::new(true).with(|w| {
            w.orders.push(Order {
                id: "78".into(),
                out_id: OUT_ID.into(),
                total: TOTAL,
                visible: true,
                paid: false,
                closed: Some(MarketError::OutOfStock),
            })
        });
        assert_eq!(
            purchase(&m, &request(UNIT, TOTAL)).await,
            Err(MarketError::OutOfStock)
        );
        assert_eq!((m.orders(), m.debits()), (1, 0));
        assert_eq!(m.calls(), ["find"]);
    }

    #[tokio::test]
    async fn an_invalid_request_touches_nothing() {
        let m = Fake::new(false);
        let mut req = request(UNIT, TOTAL);
        req.lines[0].quantity = 0;
        assert!(matches!(
            purchase(&m, &req).await,
            Err(MarketError::Rejected { code, .. }) if code == "INVALID_REQUEST"
        ));
        assert!(m.calls().is_empty());
    }
}
