//! The catalogue: listings (what customers are quoted and order, with the stock reservations
//! draw on) and offers (each marketplace channel that can supply a listing's sku, with the last
//! known price and the supplier's track record, ranked by procurement).

use crate::db::{Result, Store, StoreError, parse};
use procure_domain::{
    Currency, Money,
    clock::now_ms,
    order::Platform,
    procurement::Candidate,
    quote::{Dimensions, QuoteItem},
};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Listing {
    pub sku: String,
    pub platform: String,
    pub offer_id: String,
    pub spec_id: String,
    pub title: String,
    pub price_fen: i64,
    pub weight_g: i64,
    pub l_mm: i64,
    pub w_mm: i64,
    pub h_mm: i64,
    pub domestic_shipping_fen: i64,
    pub available: i64,
}

/// Duty and shipping-line category of a listing. Listings carry no category yet, so everything
/// is "general"; this is the one place to change when they do.
pub fn category_of(_listing: &Listing) -> String {
    "general".to_owned()
}

impl Listing {
    /// This listing as a quote item: `quantity` units at `unit_price_fen` (the listing's own
    /// price, or another channel's), with its weight, size and domestic shipping.
    pub fn quote_item(
        &self,
        unit_price_fen: i64,
        domestic_shipping_fen: i64,
        quantity: u32,
    ) -> QuoteItem {
        let dim = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
        QuoteItem {
            unit_price: Money::new(unit_price_fen, Currency::CNY),
            quantity,
            unit_weight_g: dim(self.weight_g),
            unit_dims: Dimensions {
                l_mm: dim(self.l_mm),
                w_mm: dim(self.w_mm),
                h_mm: dim(self.h_mm),
            },
            domestic_shipping: Money::new(domestic_shipping_fen, Currency::CNY),
            category: category_of(self),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Offer {
    pub sku: String,
    pub platform: Platform,
    pub offer_id: String,
    pub spec_id: String,
    pub price_fen: i64,
    pub domestic_shipping_fen: i64,
    pub stock: Option<i64>,
    /// Taken out of procurement (its listing disappeared); stored offers are written active.
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

#[derive(sqlx::FromRow)]
struct OfferRow {
    sku: String,
    platform: String,
    offer_id: String,
    spec_id: String,
    price_fen: i64,
    domestic_shipping_fen: i64,
    stock: Option<i64>,
    active: i64,
}

impl TryFrom<OfferRow> for Offer {
    type Error = StoreError;

    fn try_from(r: OfferRow) -> Result<Offer> {
        Ok(Offer {
            platform: parse(&r.platform)?,
            sku: r.sku,
            offer_id: r.offer_id,
            spec_id: r.spec_id,
            price_fen: r.price_fen,
            domestic_shipping_fen: r.domestic_shipping_fen,
            stock: r.stock,
            active: r.active != 0,
        })
    }
}

/// An `offers` row as a ranking candidate, with the supplier's track record.
#[derive(sqlx::FromRow)]
struct CandidateRow {
    platform: String,
    offer_id: String,
    spec_id: String,
    price_fen: i64,
    domestic_shipping_fen: i64,
    stock: Option<i64>,
    attempts: i64,
    successes: i64,
}

impl TryFrom<CandidateRow> for Candidate {
    type Error = StoreError;

    /// The supplier's track record is Laplace-smoothed so a new supplier starts near, not at,
    /// perfect reliability.
    fn try_from(r: CandidateRow) -> Result<Candidate> {
        Ok(Candidate {
            platform: parse(&r.platform)?,
            offer_id: r.offer_id,
            spec_id: r.spec_id,
            unit_price_fen: r.price_fen,
            domestic_shipping_fen: r.domestic_shipping_fen,
            reliability_bps: ((r.successes + 9) * 10_000 / (r.attempts + 10)).clamp(0, 10_000)
                as u32,
            stock: r.stock,
        })
    }
}

/// The active offers of a sku and of the listings an operator linked to it as the same product
/// (store `alternatives`): procurement ranks and fails over across all of them.
const CANDIDATE_SELECT: &str = "SELECT platform, offer_id, spec_id, price_fen, domestic_shipping_fen, stock, attempts, successes \
     FROM offers WHERE active = 1 AND (sku = $1 OR sku IN \
     (SELECT alternative_sku FROM sku_alternatives WHERE sku = $1))";

/// Every active offer of a sku as a ranking candidate, as the offers stand in `tx`.
pub(crate) async fn candidates_in(
    tx: &mut Transaction<'_, Any>,
    sku: &str,
) -> Result<Vec<Candidate>> {
    let rows: Vec<CandidateRow> = sqlx::query_as(CANDIDATE_SELECT)
        .bind(sku)
        .fetch_all(&mut **tx)
        .await?;
    rows.into_iter().map(Candidate::try_from).collect()
}

const LISTING_SELECT: &str = "SELECT sku, platform, offer_id, spec_id, title, price_fen, weight_g, l_mm, w_mm, h_mm, \
     domestic_shipping_fen, available FROM listings";

impl Store {
    // ----- listings ----------------------------------------------------------------------

    /// Write a listing with exactly the stock given, overwriting what is there: for setting
    /// stock on purpose (tests, a restock). Seeding uses [`Store::seed_listing`], which never
    /// touches stock.
    pub async fn upsert_listing(&self, l: &Listing) -> Result<()> {
        self.write_listing(l, true).await
    }

    /// Seed a listing from a catalogue: inserted with its stock when new; when it exists, its
    /// offer, title, price and measures refresh and its stock stays as it is. Units held by
    /// reservations were taken out of `available` when they were reserved, so writing the
    /// catalogue's figure again on a restart would sell them twice.
    pub async fn seed_listing(&self, l: &Listing) -> Result<()> {
        self.write_listing(l, false).await
    }

    /// Insert or refresh a listing; `set_stock` also overwrites `available` on an existing one.
    async fn write_listing(&self, l: &Listing, set_stock: bool) -> Result<()> {
        let stock = if set_stock {
            "available = excluded.available, "
        } else {
            ""
        };
        sqlx::query(&format!(
            "INSERT INTO listings (sku, platform, offer_id, spec_id, title, price_fen, weight_g, l_mm, w_mm, h_mm, \
             domestic_shipping_fen, available, updated_at_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) \
             ON CONFLICT (sku) DO UPDATE SET platform = excluded.platform, offer_id = excluded.offer_id, \
             spec_id = excluded.spec_id, title = excluded.title, price_fen = excluded.price_fen, \
             weight_g = excluded.weight_g, l_mm = excluded.l_mm, w_mm = excluded.w_mm, h_mm = excluded.h_mm, \
             domestic_shipping_fen = excluded.domestic_shipping_fen, {stock}updated_at_ms = excluded.updated_at_ms"
        ))
        .bind(&l.sku)
        .bind(&l.platform)
        .bind(&l.offer_id)
        .bind(&l.spec_id)
        .bind(&l.title)
        .bind(l.price_fen)
        .bind(l.weight_g)
        .bind(l.l_mm)
        .bind(l.w_mm)
        .bind(l.h_mm)
        .bind(l.domestic_shipping_fen)
        .bind(l.available)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn listing(&self, sku: &str) -> Result<Listing> {
        sqlx::query_as(&format!("{LISTING_SELECT} WHERE sku = $1"))
            .bind(sku)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::UnknownSku(sku.to_owned()))
    }

    pub async fn listings(&self) -> Result<Vec<Listing>> {
        Ok(sqlx::query_as(&format!("{LISTING_SELECT} ORDER BY sku"))
            .fetch_all(self.pool())
            .await?)
    }

    // ----- offers ------------------------------------------------------------------------

    pub async fn upsert_offer(&self, o: &Offer) -> Result<()> {
        sqlx::query(
            "INSERT INTO offers (platform, offer_id, sku, spec_id, price_fen, domestic_shipping_fen, stock, active, updated_at_ms) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,1,$8) ON CONFLICT (platform, offer_id, spec_id) DO UPDATE SET sku = excluded.sku, \
             price_fen = excluded.price_fen, domestic_shipping_fen = excluded.domestic_shipping_fen, \
             stock = excluded.stock, active = 1, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(o.platform.as_str())
        .bind(&o.offer_id)
        .bind(&o.sku)
        .bind(&o.spec_id)
        .bind(o.price_fen)
        .bind(o.domestic_shipping_fen)
        .bind(o.stock)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Every active offer, by sku then platform.
    pub async fn offers(&self) -> Result<Vec<Offer>> {
        Ok(self
            .offers_all()
            .await?
            .into_iter()
            .filter(|o| o.active)
            .collect())
    }

    /// Every offer, active or not, by sku then platform.
    pub async fn offers_all(&self) -> Result<Vec<Offer>> {
        let rows: Vec<OfferRow> = sqlx::query_as(
            "SELECT sku, platform, offer_id, spec_id, price_fen, domestic_shipping_fen, stock, active \
             FROM offers ORDER BY sku, platform, offer_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(Offer::try_from).collect()
    }

    /// Take an offer out of (or back into) procurement, e.g. when its listing disappears: every
    /// SKU of it.
    pub async fn set_offer_active(
        &self,
        platform: Platform,
        offer_id: &str,
        active: bool,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE offers SET active = $1, updated_at_ms = $2 WHERE platform = $3 AND offer_id = $4",
        )
        .bind(i64::from(active))
        .bind(now_ms())
        .bind(platform.as_str())
        .bind(offer_id)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n >= 1)
    }

    /// Every active offer of a sku as a ranking candidate, with its supplier's track record.
    pub async fn candidates(&self, sku: &str) -> Result<Vec<Candidate>> {
        let rows: Vec<CandidateRow> = sqlx::query_as(CANDIDATE_SELECT)
            .bind(sku)
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(Candidate::try_from).collect()
    }

    /// Count one purchase attempt against a supplier's record.
    pub async fn record_offer_attempt(
        &self,
        platform: Platform,
        offer_id: &str,
        success: bool,
    ) -> Result<()> {
        sqlx::query("UPDATE offers SET attempts = attempts + 1, successes = successes + $1 WHERE platform = $2 AND offer_id = $3")
            .bind(i64::from(success))
            .bind(platform.as_str())
            .bind(offer_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
