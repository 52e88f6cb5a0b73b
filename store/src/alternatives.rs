//! Alternatives: the same product sold elsewhere, linked by an operator (table
//! `sku_alternatives`). A link joins two listings both ways, so the offers of each are
//! procurement candidates of the other ([`crate::catalogue`]'s candidate query): an order on a
//! 1688 SKU can be bought on Taobao when the 1688 seller fails, and the other way round. Links do
//! not chain: a candidate is one link away, so an operator's link never reaches further than
//! the two listings the operator looked at.

use crate::db::{Result, Store, StoreError, parse};
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

const ALTERNATIVE_SELECT: &str = "SELECT a.sku, a.alternative_sku, l.platform, l.offer_id, l.spec_id, l.title, \
     l.price_fen, a.confidence_bps, a.linked_by, a.linked_at_ms \
     FROM sku_alternatives a JOIN listings l ON l.sku = a.alternative_sku";

/// Mark a product changed (a link to or from it), so every API replica drops its cached answer
/// ([`Store::products_changed_since`]).
async fn touch_product(tx: &mut Transaction<'_, Any>, id: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE products SET updated_at_ms = $1, version = version + 1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The alternatives of each of `skus`, by sku then when linked.
pub(crate) async fn alternatives_in(
    conn: &mut sqlx::AnyConnection,
    skus: &[&str],
) -> Result<Vec<SkuAlternative>> {
    if skus.is_empty() {
        return Ok(Vec::new());
    }
    let marks: Vec<String> = (1..=skus.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "{ALTERNATIVE_SELECT} WHERE a.sku IN ({}) ORDER BY a.sku, a.linked_at_ms, a.alternative_sku",
        marks.join(",")
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

/// The product of a listing, if one was imported: the product whose own offer the listing is,
/// else any product that adopted it.
async fn product_id_of(tx: &mut Transaction<'_, Any>, sku: &str) -> Result<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT ps.product FROM product_skus ps JOIN products p ON p.id = ps.product \
         JOIN listings l ON l.sku = ps.sku WHERE ps.sku = $1 \
         ORDER BY CASE WHEN p.platform = l.platform AND p.product_id = l.offer_id THEN 0 ELSE 1 END, ps.product \
         LIMIT 1",
    )
    .bind(sku)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|(p,)| p))
}

impl Store {
    /// Link `alternative` to `sku` as the same product, both ways, by `linked_by`, with the
    /// matching suggestion's confidence if there is one. Both listings must exist and be two
    /// products (two variants of one product are not alternatives). The products of both are
    /// marked changed, so their cached reads show the link at once. Answers whether the link is
    /// new.
    pub async fn link_alternative(
        &self,
        sku: &str,
        alternative: &str,
        confidence_bps: Option<u32>,
        linked_by: &str,
    ) -> Result<bool> {
        if sku == alternative {
            return Err(StoreError::StateConflict(
                "a listing is not an alternative of itself".into(),
            ));
        }
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        // Write first (SQLite: a reader cannot become the writer once another committed).
        let inserted = sqlx::query(
            "INSERT INTO sku_alternatives (sku, alternative_sku, confidence_bps, linked_by, linked_at_ms) \
             SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM listings WHERE sku = $1) \
             AND EXISTS (SELECT 1 FROM listings WHERE sku = $2) \
             ON CONFLICT (sku, alternative_sku) DO NOTHING",
        )
        .bind(sku)
        .bind(alternative)
        .bind(confidence_bps.map(i64::from))
        .bind(linked_by)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
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
        let (a, b) = (
            product_id_of(&mut tx, sku).await?,
            product_id_of(&mut tx, alternative).await?,
        );
        if let (Some(a), Some(b)) = (&a, &b)
            && a == b
        {
            tx.rollback().await?;
            return Err(StoreError::StateConflict(format!(
                "{sku} and {alternative} are variants of one product, {a}"
            )));
        }
        sqlx::query(
            "INSERT INTO sku_alternatives (sku, alternative_sku, confidence_bps, linked_by, linked_at_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sku, alternative_sku) DO NOTHING",
        )
        .bind(alternative)
        .bind(sku)
        .bind(confidence_bps.map(i64::from))
        .bind(linked_by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for p in [&a, &b].into_iter().flatten() {
            touch_product(&mut tx, p, now).await?;
        }
        tx.commit().await?;
        Ok(inserted == 1)
    }

    /// Undo a link, both ways. `Ok(false)` when there was none.
    pub async fn unlink_alternative(&self, sku: &str, alternative: &str) -> Result<bool> {
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
            return Ok(false);
        }
        for s in [sku, alternative] {
            if let Some(p) = product_id_of(&mut tx, s).await? {
                touch_product(&mut tx, &p, now).await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The alternatives linked to `sku`.
    pub async fn alternatives(&self, sku: &str) -> Result<Vec<SkuAlternative>> {
        let mut conn = self.pool().acquire().await?;
        alternatives_in(&mut conn, &[sku]).await
    }
}
