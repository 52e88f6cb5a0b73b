//! Alternatives: the same product sold elsewhere, linked by an operator (table
//! `sku_alternatives`). A link joins two listings both ways, so the offers of each are
//! procurement candidates of the other ([`crate::catalogue`]'s candidate query): an order on a
//! 1688 SKU can be bought on Taobao when the 1688 seller fails, and the other way round. Links do
//! not chain: a candidate is one link away, so an operator's link never reaches further than
//! the two listings the operator looked at. A link shows the alternative's channel as it was
//! when linked, at that offer's current price.

use crate::db::{Result, Store, StoreError, parse, placeholders};
use procure_domain::{clock::now_ms, order::Platform};
use serde::Serialize;
use sqlx::{Any, Transaction};

/// One listing linked to another as the same product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkuAlternative {
    /// The listing it is an alternative for.
    pub sku: String,
    /// The alternative's listing and what it sells through.
    pub alternative_sku: String,
    pub platform: Platform,
    pub offer_id: String,
    pub spec_id: String,
    pub title: String,
    pub price_fen: i64,
    /// The matching suggestion's confidence when the link was made, if both were imported.
    pub confidence_bps: Option<u32>,
    pub linked_by: String,
    pub linked_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct AlternativeRow {
    sku: String,
    alternative_sku: String,
    platform: String,
    offer_id: String,
    spec_id: String,
    title: String,
    price_fen: i64,
    confidence_bps: Option<i64>,
    linked_by: String,
    linked_at_ms: i64,
}

impl TryFrom<AlternativeRow> for SkuAlternative {
    type Error = StoreError;
    fn try_from(r: AlternativeRow) -> Result<SkuAlternative> {
        Ok(SkuAlternative {
            platform: parse(&r.platform)?,
            sku: r.sku,
            alternative_sku: r.alternative_sku,
            offer_id: r.offer_id,
            spec_id: r.spec_id,
            title: r.title,
            price_fen: r.price_fen,
            confidence_bps: r.confidence_bps.map(|c| c.clamp(0, 10_000) as u32),
            linked_by: r.linked_by,
            linked_at_ms: r.linked_at_ms,
        })
    }
}

/// The link with its channel as linked, at the channel's current price (its offer's, else the
/// listing's).
const ALTERNATIVE_SELECT: &str = "SELECT a.sku, a.alternative_sku, a.platform, a.offer_id, a.spec_id, l.title, \
     COALESCE(o.price_fen, l.price_fen) AS price_fen, a.confidence_bps, a.linked_by, a.linked_at_ms \
     FROM sku_alternatives a JOIN listings l ON l.sku = a.alternative_sku \
     LEFT JOIN offers o ON o.platform = a.platform AND o.offer_id = a.offer_id AND o.spec_id = a.spec_id";

/// Mark changed every product that lists one of `skus` (a listing may be adopted by several),
/// so every API replica drops its cached answer ([`Store::products_changed_since`]); answers
/// them with their versions now.
async fn touch_products_of(
    tx: &mut Transaction<'_, Any>,
    skus: [&str; 2],
    now: i64,
) -> Result<Vec<(String, i64)>> {
    let mut changed: Vec<(String, i64)> = sqlx::query_as(
        "UPDATE products SET updated_at_ms = $1, version = version + 1 \
         WHERE id IN (SELECT product FROM product_skus WHERE sku IN ($2, $3)) RETURNING id, version",
    )
    .bind(now)
    .bind(skus[0])
    .bind(skus[1])
    .fetch_all(&mut **tx)
    .await?;
    changed.sort();
    Ok(changed)
}

/// The alternatives of each of `skus`, by sku then when linked.
pub(crate) async fn alternatives_in(
    conn: &mut sqlx::AnyConnection,
    skus: &[&str],
) -> Result<Vec<SkuAlternative>> {
    if skus.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "{ALTERNATIVE_SELECT} WHERE a.sku IN ({}) ORDER BY a.sku, a.linked_at_ms, a.alternative_sku",
        placeholders(1, skus.len())
    );
    let mut q = sqlx::query_as::<_, AlternativeRow>(&sql);
    for s in skus {
        q = q.bind(*s);
    }
    q.fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(SkuAlternative::try_from)
        .collect()
}

impl Store {
    /// Link `alternative` to `sku` as the same product, both ways, by `linked_by`, with the
    /// matching suggestion's confidence if there is one. Both listings must exist and belong to
    /// no product in common (two variants of one product are not alternatives). Every product
    /// that lists either is marked changed, so its cached reads show the link at once. Answers
    /// whether the link is new and the products changed, with their versions.
    pub async fn link_alternative(
        &self,
        sku: &str,
        alternative: &str,
        confidence_bps: Option<u32>,
        linked_by: &str,
    ) -> Result<(bool, Vec<(String, i64)>)> {
        if sku == alternative {
            return Err(StoreError::StateConflict(
                "a listing is not an alternative of itself".into(),
            ));
        }
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        // Write first (SQLite: a reader cannot become the writer once another committed), and
        // in one order of the two skus, so two links of one pair never wait on each other.
        let mut created = false;
        let (low, high) = if sku < alternative {
            (sku, alternative)
        } else {
            (alternative, sku)
        };
        for (from, to) in [(low, high), (high, low)] {
            let n = sqlx::query(
                "INSERT INTO sku_alternatives (sku, alternative_sku, platform, offer_id, spec_id, confidence_bps, \
                 linked_by, linked_at_ms) SELECT $1, l.sku, l.platform, l.offer_id, l.spec_id, $3, $4, $5 \
                 FROM listings l WHERE l.sku = $2 AND EXISTS (SELECT 1 FROM listings WHERE sku = $1) \
                 ON CONFLICT (sku, alternative_sku) DO NOTHING",
            )
            .bind(from)
            .bind(to)
            .bind(confidence_bps.map(i64::from))
            .bind(linked_by)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            created |= from == sku && n == 1;
        }
        for s in [sku, alternative] {
            let known: Option<(String,)> =
                sqlx::query_as("SELECT sku FROM listings WHERE sku = $1")
                    .bind(s)
                    .fetch_optional(&mut *tx)
                    .await?;
            if known.is_none() {
                tx.rollback().await?;
                return Err(StoreError::UnknownSku(s.to_owned()));
            }
        }
        let shared: Option<(String,)> = sqlx::query_as(
            "SELECT a.product FROM product_skus a JOIN product_skus b ON a.product = b.product \
             WHERE a.sku = $1 AND b.sku = $2 LIMIT 1",
        )
        .bind(sku)
        .bind(alternative)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((product,)) = shared {
            tx.rollback().await?;
            return Err(StoreError::StateConflict(format!(
                "{sku} and {alternative} are variants of one product, {product}"
            )));
        }
        let changed = touch_products_of(&mut tx, [low, high], now).await?;
        tx.commit().await?;
        Ok((created, changed))
    }

    /// Undo a link, both ways. `None` when there was none; else the products changed, with
    /// their versions.
    pub async fn unlink_alternative(
        &self,
        sku: &str,
        alternative: &str,
    ) -> Result<Option<Vec<(String, i64)>>> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "DELETE FROM sku_alternatives WHERE (sku = $1 AND alternative_sku = $2) \
             OR (sku = $2 AND alternative_sku = $1)",
        )
        .bind(sku)
        .bind(alternative)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let changed = touch_products_of(&mut tx, [sku, alternative], now).await?;
        tx.commit().await?;
        Ok(Some(changed))
    }

    /// The alternatives linked to `sku`.
    pub async fn alternatives(&self, sku: &str) -> Result<Vec<SkuAlternative>> {
        let mut conn = self.pool().acquire().await?;
        alternatives_in(&mut conn, &[sku]).await
    }
}
