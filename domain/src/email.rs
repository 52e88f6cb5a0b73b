//! The email channel's pure part: which address a customer may give ([`check_address`]), the
//! locales the templates exist in ([`Locale`]), and the message each customer notification
//! becomes ([`render`]): a subject and a plain-text body per event type, with everything the
//! customer needs from the payload (items, amounts formatted from minor units by
//! [`Money`](crate::Money)'s `Display`, deadlines as UTC date-times, the ids and the storefront's
//! links to act on). The API's email delivery loop sends what this renders.
//!
//! Bodies are ASCII with lines well under 78 characters, so they travel as 7-bit text; the
//! storefront's skus and ids are what the payloads carry, never an address or a name.

use crate::{
    Money, OrderState,
    events::{
        ChargeDue, EventType, Item, OrderCancelled, PriceChangeAwaitingDecision, StorageExpiring,
        StorageReminder,
    },
    status::ChargeKind,
};
use serde::de::DeserializeOwned;

/// The longest address accepted (RFC 5321's path limit less its brackets).
pub const MAX_ADDRESS_LEN: usize = 254;

/// Whether `address` is one we send to: `local@domain`, ASCII, the local part at most 64
/// characters of letters, digits and ``.!#$%&'*+/=?^_`{|}~-`` (no leading, trailing or double
/// dot), the domain at least two dot-separated labels of letters, digits and inner hyphens.
/// The error says what is wrong, without repeating the address.
pub fn check_address(address: &str) -> Result<(), &'static str> {
    if address.is_empty() || address.len() > MAX_ADDRESS_LEN {
        return Err("must be 3 to 254 characters");
    }
    if !address.is_ascii() {
        return Err("must be ASCII (internationalised addresses are not supported)");
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err("must be local-part@domain");
    };
    if local.is_empty() || local.len() > 64 {
        return Err("the part before @ must be 1 to 64 characters");
    }
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
    if !local
        .split('.')
        .all(|w| !w.is_empty() && w.chars().all(atext))
    {
        return Err(
            "the part before @ may hold letters, digits, dots (not first, last or doubled) and !#$%&'*+/=?^_`{|}~-",
        );
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || !labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    {
        return Err("the domain must be a host name such as shop.example");
    }
    if !labels
        .last()
        .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()))
    {
        return Err("the domain must end in a top-level domain such as .com");
    }
    Ok(())
}

/// The languages the templates exist in. English is the one today; a new locale is a variant
/// here and a branch in each template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locale {
    En,
}

impl Locale {
    pub const ALL: &'static [Locale] = &[Locale::En];

    pub fn as_str(self) -> &'static str {
        match self {
            Locale::En => "en",
        }
    }

    /// The locale of a language tag (`en`, `en-GB`, case-insensitive), if we have it.
    pub fn parse(tag: &str) -> Option<Locale> {
        let lang = tag.split(['-', '_']).next()?.to_ascii_lowercase();
        Locale::ALL.iter().copied().find(|l| l.as_str() == lang)
    }
}

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    /// Plain text, lines separated by `\n`.
    pub text: String,
}

/// Why an event could not be rendered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("{0} is not a customer notification")]
    NotANotification(EventType),
    #[error("the {kind} payload does not parse: {reason}")]
    Payload { kind: EventType, reason: String },
}

/// The storefront's link for an order: `action_url_base` with `{order_id}` replaced (or the id
/// appended after a `/` when the base has no placeholder).
pub fn order_link(action_url_base: &str, order_id: &str) -> String {
    if action_url_base.contains("{order_id}") {
        action_url_base.replace("{order_id}", order_id)
    } else {
        format!("{}/{order_id}", action_url_base.trim_end_matches('/'))
    }
}

/// A UTC date-time for a deadline in milliseconds: `2026-12-04 14:00 UTC`.
pub fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// The message `kind`'s event with payload `data` becomes, in `locale`, with links built from
/// `action_url_base` (none without it; the ids are always there).
pub fn render(
    kind: EventType,
    data: &serde_json::Value,
    locale: Locale,
    action_url_base: Option<&str>,
) -> Result<Rendered, RenderError> {
    let links = Links(action_url_base.filter(|b| !b.trim().is_empty()));
    match (kind, locale) {
        (EventType::StorageReminder, Locale::En) => {
            Ok(en::storage_reminder(&parse(kind, data)?, links))
        }
        (EventType::StorageExpiring, Locale::En) => {
            Ok(en::storage_expiring(&parse(kind, data)?, links))
        }
        (EventType::PriceChangeAwaitingDecision, Locale::En) => {
            Ok(en::price_change(&parse(kind, data)?, links))
        }
        (EventType::ChargeDue, Locale::En) => Ok(en::charge_due(&parse(kind, data)?, links)),
        (EventType::OrderCancelled, Locale::En) => Ok(en::cancelled(&parse(kind, data)?, links)),
        (other, _) => Err(RenderError::NotANotification(other)),
    }
}

fn parse<T: DeserializeOwned>(kind: EventType, data: &serde_json::Value) -> Result<T, RenderError> {
    T::deserialize(data).map_err(|e| RenderError::Payload {
        kind,
        reason: e.to_string(),
    })
}

#[derive(Clone, Copy)]
struct Links<'a>(Option<&'a str>);

impl Links<'_> {
    fn order(&self, order_id: &str) -> Option<String> {
        self.0.map(|b| order_link(b, order_id))
    }
}

fn items(out: &mut String, items: &[Item], indent: &str) {
    for i in items {
        out.push_str(&format!(
            "{indent}- line {}: {} x {}\n",
            i.line_no, i.sku, i.quantity
        ));
    }
}

mod en {
    use super::*;

    const SIGN_OFF: &str = "\n-- \nThis message is about your order with us.\nYou can turn \
                            these emails off in your account.\n";

    fn link(out: &mut String, links: Links<'_>, order_id: &str) {
        if let Some(url) = links.order(order_id) {
            out.push_str(&format!("Open your order: {url}\n"));
        }
    }

    pub(super) fn storage_reminder(r: &StorageReminder, links: Links<'_>) -> Rendered {
        let mut t = String::from("Hello,\n\n");
        if r.orders.is_empty() {
            t.push_str(
                r.legacy_message
                    .as_deref()
                    .unwrap_or("Free storage ends soon."),
            );
            t.push('\n');
        } else {
            t.push_str(&format!(
                "free storage in our warehouse ends soon for goods of {} order(s).\nThe first ends on {}.\n",
                r.orders.len(),
                utc(r.first_deadline_ms)
            ));
            for o in &r.orders {
                t.push_str(&format!("\nOrder {}\n", o.order_id));
                items(&mut t, &o.items, "  ");
                t.push_str(&format!(
                    "  Free storage until: {}\n",
                    utc(o.free_storage_until_ms)
                ));
                if let Some(fee) = o.extension_fee_per_day {
                    t.push_str(&format!("  Extension: {fee} per day\n"));
                }
                if let Some(url) = links.order(&o.order_id) {
                    t.push_str(&format!("  Open your order: {url}\n"));
                }
            }
            t.push_str(
                "\nShip them in a parcel, extend storage, or have them disposed of\nbefore the \
                 date above.\n",
            );
        }
        t.push_str(SIGN_OFF);
        Rendered {
            subject: format!(
                "Free storage ends {} for your stored goods",
                utc(r.first_deadline_ms)
            ),
            text: t,
        }
    }

    pub(super) fn storage_expiring(e: &StorageExpiring, links: Links<'_>) -> Rendered {
        let mut t = format!(
            "Hello,\n\nfree storage has ended for order {}:\n",
            e.order_id
        );
        items(&mut t, &e.items, "");
        if let Some(ended) = e.free_storage_ended_at_ms {
            t.push_str(&format!("Free storage ended: {}\n", utc(ended)));
        }
        match e.dispose_after_ms {
            Some(d) => t.push_str(&format!(
                "Choose by {}: ship, extend storage or dispose.\nWithout a choice the goods are \
                 disposed of then.\n",
                utc(d)
            )),
            None => t.push_str("Choose now: ship, extend storage or dispose.\n"),
        }
        link(&mut t, links, &e.order_id);
        t.push_str(SIGN_OFF);
        Rendered {
            subject: format!("Action needed: storage ended for order {}", e.order_id),
            text: t,
        }
    }

    pub(super) fn price_change(p: &PriceChangeAwaitingDecision, links: Links<'_>) -> Rendered {
        let mut t = format!(
            "Hello,\n\nthe supplier's price for line {} of order {} has risen.\n\n",
            p.line_no, p.order_id
        );
        items(
            &mut t,
            &[Item {
                line_no: p.line_no,
                sku: p.sku.clone(),
                quantity: p.quantity,
            }],
            "",
        );
        t.push_str(&format!(
            "Unit price paid: {}\nUnit price now:  {}\nTo accept, pay:  {}\n\nDecide by {}.\n\
             Without an answer the order is cancelled and refunded in full.\n\n\
             Price change: {}\nPayment to accept: {}\n",
            p.paid_unit_price,
            p.new_unit_price,
            p.supplement,
            utc(p.decide_by_ms),
            p.price_change_id,
            p.payment_intent_id
        ));
        link(&mut t, links, &p.order_id);
        t.push_str(SIGN_OFF);
        Rendered {
            subject: format!(
                "Price change on order {}: accept {} or decline by {}",
                p.order_id,
                p.supplement,
                utc(p.decide_by_ms)
            ),
            text: t,
        }
    }

    pub(super) fn charge_due(c: &ChargeDue, links: Links<'_>) -> Rendered {
        let what = match c.kind {
            ChargeKind::StorageExtension => "storage extension",
            ChargeKind::ShippingSettlement => "shipping above the quote",
        };
        let mut t = format!(
            "Hello,\n\na payment of {} is due for the {what}.\n{}\n\n",
            c.amount, c.description
        );
        t.push_str(&format!("Orders: {}\n", c.order_ids.join(", ")));
        if let Some(p) = &c.parcel_id {
            t.push_str(&format!("Parcel: {p} (it ships once this is paid)\n"));
        }
        t.push_str(&format!(
            "Charge: {}\nPayment: {}\n",
            c.charge_id, c.payment_intent_id
        ));
        for o in &c.order_ids {
            link(&mut t, links, o);
        }
        t.push_str(SIGN_OFF);
        Rendered {
            subject: format!("Payment due: {} for the {what}", c.amount),
            text: t,
        }
    }

    pub(super) fn cancelled(c: &OrderCancelled, links: Links<'_>) -> Rendered {
        let how = match c.state {
            OrderState::Refunded => "was cancelled and refunded",
            OrderState::PaymentExpired => "was cancelled: it was not paid in time",
            OrderState::Failed => "could not be fulfilled",
            _ => "was cancelled",
        };
        let mut t = format!(
            "Hello,\n\norder {} {how}.\nReason: {}\n\n",
            c.order_id, c.reason
        );
        items(&mut t, &c.items, "");
        t.push_str(&format!("\nOrder total: {}\n", c.total));
        let zero = Money::new(0, c.refunded.currency);
        if c.refunded != zero {
            t.push_str(&format!("Refunded:    {}\n", c.refunded));
        }
        link(&mut t, links, &c.order_id);
        t.push_str(SIGN_OFF);
        Rendered {
            subject: format!("Order {} {how}", c.order_id),
            text: t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_without_echoing_them() {
        for ok in [
            "ana@shop.example.com",
            "a.b+tag@mail.co.uk",
            "x_y-z@sub-domain.example.org",
            "o'neil@example.ie",
        ] {
            assert_eq!(check_address(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a..b@example.com",
            ".a@example.com",
            "a b@example.com",
            "a@exa_mple.com",
            "a@-example.com",
            "a@example.c0m",
            "ünï@example.com",
            "a@b@example.com",
            "<a@example.com>",
        ] {
            let e = check_address(bad).expect_err(bad);
            assert!(bad.is_empty() || !e.contains(bad), "{e}");
        }
        assert!(check_address(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn locales_come_from_language_tags() {
        assert_eq!(Locale::parse("en"), Some(Locale::En));
        assert_eq!(Locale::parse("EN-gb"), Some(Locale::En));
        assert_eq!(Locale::parse("fr"), None);
    }

    #[test]
    fn every_customer_notification_renders_its_sample_in_ascii() {
        for &kind in EventType::ALL {
            let got = render(
                kind,
                &kind.example(),
                Locale::En,
                Some("https://shop.example/orders/{order_id}"),
            );
            if !kind.notifies_customer() {
                assert_eq!(got, Err(RenderError::NotANotification(kind)));
                continue;
            }
            let m = got.unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert!(m.subject.is_ascii() && m.text.is_ascii(), "{kind}");
            assert!(m.text.lines().all(|l| l.len() <= 78), "{kind}: {}", m.text);
            assert!(
                m.text
                    .contains("https://shop.example/orders/ord_01a2013808347269"),
                "{kind}: {}",
                m.text
            );
        }
    }

    #[test]
    fn the_price_change_names_amounts_deadline_ids_and_link() {
        let kind = EventType::PriceChangeAwaitingDecision;
        let m = render(
            kind,
            &kind.example(),
            Locale::En,
            Some("https://shop.example/o/{order_id}"),
        )
        .unwrap();
        assert_eq!(
            m.subject,
            "Price change on order ord_01a2013808347269: accept 3.10 USD or decline by 2025-12-03 14:40 UTC"
        );
        for want in [
            "- line 1: TSH-COT-L-WHT x 2",
            "Unit price paid: 18.50 CNY",
            "Unit price now:  29.60 CNY",
            "To accept, pay:  3.10 USD",
            "Decide by 2025-12-03 14:40 UTC",
            "Price change: pc_ord_01a2013808347269_1_1",
            "Payment to accept: pi_3QxT9c",
            "Open your order: https://shop.example/o/ord_01a2013808347269",
        ] {
            assert!(m.text.contains(want), "{want:?} in\n{}", m.text);
        }
        // Without a base there are no links, the ids stay.
        let bare = render(kind, &kind.example(), Locale::En, None).unwrap();
        assert!(!bare.text.contains("http") && bare.text.contains("pi_3QxT9c"));
        assert_eq!(
            order_link("https://s.example/orders", "ord_1"),
            "https://s.example/orders/ord_1"
        );
    }

    #[test]
    fn a_payload_that_does_not_parse_is_an_error() {
        assert!(matches!(
            render(
                EventType::ChargeDue,
                &serde_json::json!({"x": 1}),
                Locale::En,
                None
            ),
            Err(RenderError::Payload { .. })
        ));
    }
}
