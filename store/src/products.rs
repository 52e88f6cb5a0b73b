//! Imported products: a marketplace product as its detail API described it (table `products`),
//! each SKU of it a listing customers are quoted and order by its `sku` and an offer procurement
//! ranks (tables `product_skus`, `listings`, `offers`), all written in one transaction so a
//! product is never half imported.
//!
//! Ids are derived, so importing the same product twice is a refresh, never a second product:
//! the product is `{platform}-{product_id}` (`1688-610001`, `taobao-695028137746`,
//! `pdd-<goods_sign>`), each SKU `{product}-{8 hex digits of its spec id}` (`-0` for a product
//! without variants), at most 64 characters as listings' skus are.

use crate::alternatives::{SkuAlternative, alternatives_in};
use crate::db::{Result, Store, StoreError, corrupt, json, parse, placeholders};
use procure_domain::{
    clock::now_ms,
    matching::title_grams,
    order::Platform,
    product::{ESTIMATED_DOMESTIC_SHIPPING_FEN, Measures, ProductDetail},
    quote::Dimensions,
};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};

/// Units a listing may sell when its marketplace reports no stock (Pinduoduo): procure's own
/// counter; the marketplace's live stock is what the purchase meets.
pub const UNREPORTED_STOCK: i64 = 10_000;

/// Whether the marketplace still sells the product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    Active,
    /// The marketplace answered that the listing is gone: no longer quoted or bought.
    Delisted,
}

impl ProductStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProductStatus::Active => "active",
            ProductStatus::Delisted => "delisted",
        }
    }
}

impl std::str::FromStr for ProductStatus {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "active" => Ok(ProductStatus::Active),
            "delisted" => Ok(ProductStatus::Delisted),
            other => Err(format!("unknown product status {other}")),
        }
    }
}

/// One SKU of an imported product: the storefront's `sku` for it and the marketplace's spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductSku {
    pub sku: String,
    pub spec_id: String,
}

/// An imported product as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredProduct {
    pub id: String,
    pub detail: ProductDetail,
    /// The SKUs in the marketplace's order, with their skus.
    pub skus: Vec<ProductSku>,
    pub measures: Measures,
    pub status: ProductStatus,
    /// When the marketplace was last read for it.
    pub fetched_at_ms: i64,
    pub imported_at_ms: i64,
    pub updated_at_ms: i64,
    /// One more on every change (import, refresh, delisting, a monitor's price, a link): what a
    /// cached answer is built from.
    pub version: i64,
    /// The listings an operator linked to its SKUs as the same product elsewhere.
    pub alternatives: Vec<SkuAlternative>,
}

impl StoredProduct {
    /// The marketplace's spec id of one of its skus.
    pub fn spec_of(&self, sku: &str) -> Option<&str> {
        self.skus
            .iter()
            .find(|k| k.sku == sku)
            .map(|k| k.spec_id.as_str())
    }

    /// The sku of one of its marketplace spec ids.
    pub fn sku_of(&self, spec_id: &str) -> Option<&str> {
        self.skus
            .iter()
            .find(|k| k.spec_id == spec_id)
            .map(|k| k.sku.as_str())
    }
}

/// The product id of a marketplace product.
pub fn product_key(platform: Platform, product_id: &str) -> String {
    let p = match platform {
        Platform::Alibaba1688 => "1688",
        Platform::Taobao => "taobao",
        Platform::Pinduoduo => "pdd",
    };
    format!("{p}-{product_id}")
}

/// The storefront sku of one SKU of a product.
pub fn sku_key(product: &str, spec_id: &str) -> String {
    if spec_id.is_empty() {
        return format!("{product}-0");
    }
    // FNV-1a, 32 bits: stable across releases (unlike std's hasher).
    let mut h: u32 = 0x811c_9dc5;
    for b in spec_id.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    format!("{product}-{h:08x}")
}

#[derive(sqlx::FromRow)]
struct ProductRow {
    id: String,
    data: String,
    weight_g: i64,
    l_mm: i64,
    w_mm: i64,
    h_mm: i64,
    measures_estimated: i64,
    status: String,
    fetched_at_ms: i64,
    imported_at_ms: i64,
    updated_at_ms: i64,
    version: i64,
}

/// What `products.data` holds.
#[derive(Serialize, Deserialize)]
struct Data {
    detail: ProductDetail,
    skus: Vec<ProductSku>,
}

impl TryFrom<ProductRow> for StoredProduct {
    type Error = StoreError;
    fn try_from(r: ProductRow) -> Result<StoredProduct> {
        let data: Data = json(&r.data)?;
        let dim = |v: i64| u32::try_from(v).map_err(corrupt);
        Ok(StoredProduct {
            id: r.id,
            detail: data.detail,
            skus: data.skus,
            measures: Measures {
                weight_g: dim(r.weight_g)?,
                dimensions: Dimensions {
                    l_mm: dim(r.l_mm)?,
                    w_mm: dim(r.w_mm)?,
                    h_mm: dim(r.h_mm)?,
                },
                estimated: r.measures_estimated != 0,
            },
            status: parse(&r.status)?,
            fetched_at_ms: r.fetched_at_ms,
            imported_at_ms: r.imported_at_ms,
            updated_at_ms: r.updated_at_ms,
            version: r.version,
            alternatives: Vec::new(),
        })
    }
}

const SELECT: &str = "SELECT id, data, weight_g, l_mm, w_mm, h_mm, measures_estimated, status, \
                      fetched_at_ms, imported_at_ms, updated_at_ms, version FROM products";

/// One product's change as [`Store::products_changed_since`] reports it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ProductChange {
    pub id: String,
    pub updated_at_ms: i64,
    pub version: i64,
}

/// A page of products.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductPage {
    pub products: Vec<StoredProduct>,
    /// Pass as `after` for the next page; `None` on the last.
    pub next: Option<String>,
}

/// Mark the product of an offer changed (a price monitor saw it), so every API replica drops
/// its cached answer ([`Store::products_changed_since`]).
pub(crate) async fn touch(
    tx: &mut Transaction<'_, Any>,
    platform: Platform,
    offer_id: &str,
    now: i64,
) -> Result<()> {
    // The product itself, and every product one of whose SKUs links to the offer as an
    // alternative (its answer shows the alternative's price).
    sqlx::query(
        "UPDATE products SET updated_at_ms = $1, version = version + 1 WHERE (platform = $2 AND product_id = $3) \
         OR id IN (SELECT ps.product FROM product_skus ps JOIN sku_alternatives a ON a.sku = ps.sku \
         WHERE a.platform = $2 AND a.offer_id = $3)",
    )
    .bind(now)
    .bind(platform.as_str())
    .bind(offer_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The SKUs' prices, stock and whether they are bought, as the offers hold them now: a price
/// monitor's run updates the offers, and a product read shows what it saw.
async fn with_offers(conn: &mut sqlx::AnyConnection, p: StoredProduct) -> Result<StoredProduct> {
    Ok(with_offers_all(conn, vec![p])
        .await?
        .pop()
        .expect("one product in, one out"))
}

/// [`with_offers`] for many products in a fixed number of queries: their rows were read
/// already; here their offers (one query for all) and their alternatives (one query per 500
/// SKUs).
async fn with_offers_all(
    conn: &mut sqlx::AnyConnection,
    mut products: Vec<StoredProduct>,
) -> Result<Vec<StoredProduct>> {
    if products.is_empty() {
        return Ok(products);
    }
    let pairs: Vec<String> = (0..products.len())
        .map(|i| format!("(platform = ${} AND offer_id = ${})", 2 * i + 1, 2 * i + 2))
        .collect();
    let sql = format!(
        "SELECT platform, offer_id, spec_id, price_fen, stock, active FROM offers WHERE {}",
        pairs.join(" OR ")
    );
    let mut q = sqlx::query_as::<_, (String, String, String, i64, Option<i64>, i64)>(&sql);
    for p in &products {
        q = q
            .bind(p.detail.platform.as_str())
            .bind(&p.detail.product_id);
    }
    let offers = q.fetch_all(&mut *conn).await?;
    let skus: Vec<&str> = products
        .iter()
        .flat_map(|p| p.skus.iter().map(|k| k.sku.as_str()))
        .collect();
    // In chunks: a page of products with many SKUs each stays within the databases' bound
    // parameters (SQLite's 32,766).
    let mut alternatives = Vec::new();
    for chunk in skus.chunks(500) {
        alternatives.extend(alternatives_in(conn, chunk).await?);
    }
    for p in &mut products {
        let platform = p.detail.platform.as_str();
        let rows: Vec<_> = offers
            .iter()
            .filter(|r| r.0 == platform && r.1 == p.detail.product_id)
            .collect();
        for s in &mut p.detail.skus {
            if let Some((.., price, stock, _)) = rows.iter().find(|r| r.2 == s.spec_id)
                && *price > 0
            {
                s.price_fen = *price;
                s.stock = *stock;
            }
        }
        // A SKU whose offer a monitor found gone is no longer listed.
        p.detail
            .skus
            .retain(|s| !rows.iter().any(|r| r.2 == s.spec_id && r.5 == 0));
        p.alternatives = alternatives
            .iter()
            .filter(|a| p.skus.iter().any(|k| k.sku == a.sku))
            .cloned()
            .collect();
    }
    Ok(products)
}

impl Store {
    /// Products changed (imported, refreshed, delisted, priced by a monitor, linked) at or
    /// after `since_ms`, with when and their version now: what an API replica drops from its
    /// cache.
    pub async fn products_changed_since(&self, since_ms: i64) -> Result<Vec<ProductChange>> {
        sqlx::query_as("SELECT id, updated_at_ms, version FROM products WHERE updated_at_ms >= $1")
            .bind(since_ms)
            .fetch_all(self.pool())
            .await
            .map_err(Into::into)
    }

    /// Import a product, or refresh one imported before, as `detail` describes it now, read at
    /// `fetched_at_ms`: the product, each SKU's listing (price, measures, title; stock only when
    /// the listing is new) and offer (price and stock, active), in one transaction. SKUs the
    /// marketplace no longer lists stay, with their offers inactive. Answers the product and
    /// whether it is new.
    pub async fn save_product(
        &self,
        detail: &ProductDetail,
        measures: Measures,
        fetched_at_ms: i64,
    ) -> Result<(StoredProduct, bool)> {
        if detail.skus.is_empty() {
            return Err(StoreError::StateConflict("a product needs a SKU".into()));
        }
        let id = product_key(detail.platform, &detail.product_id);
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        take_write_lock(&mut tx, &id).await?;
        let before = product_in(&mut tx, &id).await?;
        let mut skus: Vec<ProductSku> = Vec::with_capacity(detail.skus.len());
        for s in &detail.skus {
            // An offer already in the catalogue (seeded, or a monitor's) keeps its listing.
            let owner: Option<(String,)> = sqlx::query_as(
                "SELECT sku FROM offers WHERE platform = $1 AND offer_id = $2 AND spec_id = $3",
            )
            .bind(detail.platform.as_str())
            .bind(&detail.product_id)
            .bind(&s.spec_id)
            .fetch_optional(&mut *tx)
            .await?;
            let known = before
                .as_ref()
                .and_then(|b| b.skus.iter().find(|k| k.spec_id == s.spec_id))
                .map(|k| k.sku.clone());
            skus.push(ProductSku {
                sku: known
                    .or(owner.map(|(sku,)| sku))
                    .unwrap_or_else(|| sku_key(&id, &s.spec_id)),
                spec_id: s.spec_id.clone(),
            });
        }
        // A SKU seen before and gone now is kept (orders name it), after the current ones.
        if let Some(old) = &before {
            for s in &old.skus {
                if !skus.iter().any(|k| k.spec_id == s.spec_id) {
                    skus.push(s.clone());
                }
            }
        }
        let data = serde_json::to_string(&Data {
            detail: detail.clone(),
            skus: skus.clone(),
        })
        .map_err(corrupt)?;
        let d = measures.dimensions;
        sqlx::query(
            "INSERT INTO products (id, platform, product_id, title, data, weight_g, l_mm, w_mm, h_mm, \
             measures_estimated, status, fetched_at_ms, imported_at_ms, updated_at_ms) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$13) ON CONFLICT (id) DO UPDATE SET \
             title = excluded.title, data = excluded.data, weight_g = excluded.weight_g, l_mm = excluded.l_mm, \
             w_mm = excluded.w_mm, h_mm = excluded.h_mm, measures_estimated = excluded.measures_estimated, \
             status = excluded.status, fetched_at_ms = excluded.fetched_at_ms, updated_at_ms = excluded.updated_at_ms, \
             version = products.version + 1",
        )
        .bind(&id)
        .bind(detail.platform.as_str())
        .bind(&detail.product_id)
        .bind(&detail.title)
        .bind(&data)
        .bind(i64::from(measures.weight_g))
        .bind(i64::from(d.l_mm))
        .bind(i64::from(d.w_mm))
        .bind(i64::from(d.h_mm))
        .bind(i64::from(measures.estimated))
        .bind(ProductStatus::Active.as_str())
        .bind(fetched_at_ms)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for (position, k) in skus.iter().enumerate() {
            let current = detail.skus.iter().find(|s| s.spec_id == k.spec_id);
            if let Some(s) = current {
                let title = sku_title(&detail.title, s);
                let available = s.stock.unwrap_or(UNREPORTED_STOCK).max(0);
                // A listing of this product takes the product's description; one it adopted
                // from the catalogue keeps its own title and measured size, and takes the price.
                // An adopted listing quoted from another channel (a seeded listing's other
                // platform, or a monitor's pick) keeps that channel's price.
                let refresh = if k.sku == sku_key(&id, &s.spec_id) {
                    "title = excluded.title, price_fen = excluded.price_fen, weight_g = excluded.weight_g, \
                     l_mm = excluded.l_mm, w_mm = excluded.w_mm, h_mm = excluded.h_mm, \
                     updated_at_ms = excluded.updated_at_ms"
                } else {
                    "price_fen = excluded.price_fen, updated_at_ms = excluded.updated_at_ms \
                     WHERE listings.platform = excluded.platform AND listings.offer_id = excluded.offer_id \
                     AND listings.spec_id = excluded.spec_id"
                };
                sqlx::query(&format!(
                    "INSERT INTO listings (sku, platform, offer_id, spec_id, title, price_fen, weight_g, l_mm, w_mm, h_mm, \
                     domestic_shipping_fen, available, updated_at_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) \
                     ON CONFLICT (sku) DO UPDATE SET {refresh}"
                ))
                .bind(&k.sku)
                .bind(detail.platform.as_str())
                .bind(&detail.product_id)
                .bind(&s.spec_id)
                .bind(&title)
                .bind(s.price_fen)
                .bind(i64::from(measures.weight_g))
                .bind(i64::from(d.l_mm))
                .bind(i64::from(d.w_mm))
                .bind(i64::from(d.h_mm))
                .bind(ESTIMATED_DOMESTIC_SHIPPING_FEN)
                .bind(available)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO offers (platform, offer_id, sku, spec_id, price_fen, domestic_shipping_fen, stock, active, updated_at_ms) \
                     VALUES ($1,$2,$3,$4,$5,$6,$7,1,$8) ON CONFLICT (platform, offer_id, spec_id) DO UPDATE SET \
                     price_fen = excluded.price_fen, stock = excluded.stock, active = 1, updated_at_ms = excluded.updated_at_ms",
                )
                .bind(detail.platform.as_str())
                .bind(&detail.product_id)
                .bind(&k.sku)
                .bind(&s.spec_id)
                .bind(s.price_fen)
                .bind(ESTIMATED_DOMESTIC_SHIPPING_FEN)
                .bind(s.stock)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            } else {
                sqlx::query(
                    "UPDATE offers SET active = 0, updated_at_ms = $1 WHERE platform = $2 AND offer_id = $3 AND spec_id = $4",
                )
                .bind(now)
                .bind(detail.platform.as_str())
                .bind(&detail.product_id)
                .bind(&k.spec_id)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO product_skus (product, spec_id, sku, position) VALUES ($1,$2,$3,$4) \
                 ON CONFLICT (product, spec_id) DO UPDATE SET position = excluded.position",
            )
            .bind(&id)
            .bind(&k.spec_id)
            .bind(&k.sku)
            .bind(position as i64)
            .execute(&mut *tx)
            .await?;
        }
        if before
            .as_ref()
            .is_none_or(|b| b.detail.title != detail.title)
        {
            index_title(&mut tx, &id, &detail.title).await?;
        }
        let saved = product_in(&mut tx, &id)
            .await?
            .ok_or_else(|| corrupt("the product just written is not there"))?;
        tx.commit().await?;
        let mut conn = self.pool().acquire().await?;
        let saved = with_offers(&mut conn, saved).await?;
        Ok((saved, before.is_none()))
    }

    /// The marketplace says the product is gone: it stays (orders name it) but is no longer
    /// quoted or bought from this channel. Answers its version now; `None` when no such product
    /// was imported.
    pub async fn mark_delisted(&self, id: &str) -> Result<Option<i64>> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        take_write_lock(&mut tx, id).await?;
        let Some(p) = product_in(&mut tx, id).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        sqlx::query(
            "UPDATE products SET status = $1, updated_at_ms = $2, version = version + 1 WHERE id = $3",
        )
            .bind(ProductStatus::Delisted.as_str())
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE offers SET active = 0, updated_at_ms = $1 WHERE platform = $2 AND offer_id = $3",
        )
        .bind(now)
        .bind(p.detail.platform.as_str())
        .bind(&p.detail.product_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(p.version + 1))
    }

    pub async fn product(&self, id: &str) -> Result<StoredProduct> {
        let mut conn = self.pool().acquire().await?;
        let row: Option<ProductRow> = sqlx::query_as(&format!("{SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        with_offers(&mut conn, row.ok_or(StoreError::NotFound)?.try_into()?).await
    }

    /// The product an imported SKU belongs to, if the sku is one.
    pub async fn product_of_sku(&self, sku: &str) -> Result<Option<StoredProduct>> {
        let mut conn = self.pool().acquire().await?;
        // A listing adopted by several products (a seeded one with offers on several
        // platforms) belongs to the product whose own offer it is.
        let row: Option<ProductRow> = sqlx::query_as(&format!(
            "{SELECT} WHERE id = (SELECT ps.product FROM product_skus ps JOIN products p ON p.id = ps.product \
             JOIN listings l ON l.sku = ps.sku WHERE ps.sku = $1 ORDER BY CASE WHEN p.platform = l.platform \
             AND p.product_id = l.offer_id THEN 0 ELSE 1 END, ps.product LIMIT 1)"
        ))
        .bind(sku)
        .fetch_optional(&mut *conn)
        .await?;
        match row {
            Some(r) => Ok(Some(with_offers(&mut conn, r.try_into()?).await?)),
            None => Ok(None),
        }
    }

    /// Products by id after `after`, at most `limit`; with `query`, only those whose title
    /// contains it (case-insensitive for ASCII).
    pub async fn products(
        &self,
        query: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<ProductPage> {
        let pattern = query.map(|q| {
            let escaped = q
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{}%", escaped.to_lowercase())
        });
        let rows: Vec<ProductRow> = sqlx::query_as(&format!(
            "{SELECT} WHERE id > $1 AND ($2 = '' OR LOWER(title) LIKE $2 ESCAPE '\\') ORDER BY id LIMIT $3"
        ))
        .bind(after.unwrap_or(""))
        .bind(pattern.as_deref().unwrap_or(""))
        .bind(limit + 1)
        .fetch_all(self.pool())
        .await?;
        let more = rows.len() as i64 > limit;
        let mut conn = self.pool().acquire().await?;
        let products = rows
            .into_iter()
            .take(limit.max(0) as usize)
            .map(StoredProduct::try_from)
            .collect::<Result<Vec<_>>>()?;
        let products = with_offers_all(&mut conn, products).await?;
        let next = more
            .then(|| products.last().map(|p| p.id.clone()))
            .flatten();
        Ok(ProductPage { products, next })
    }
}

/// A SKU's listing title: the product's, with the variant's attribute values.
fn sku_title(title: &str, sku: &procure_domain::product::SkuDetail) -> String {
    if sku.attributes.is_empty() {
        return title.to_owned();
    }
    let values: Vec<&str> = sku.attributes.iter().map(|a| a.value.as_str()).collect();
    format!("{title} ({})", values.join(", "))
}

/// Write `product`'s title grams, replacing what was there; answers whether it has any.
pub(crate) async fn index_title(
    tx: &mut Transaction<'_, Any>,
    product: &str,
    title: &str,
) -> Result<bool> {
    sqlx::query("DELETE FROM product_title_grams WHERE product = $1")
        .bind(product)
        .execute(&mut **tx)
        .await?;
    let grams = title_grams(title);
    if grams.is_empty() {
        return Ok(false);
    }
    // Each row is (gram, product): the product is $1, the grams $2, $3, …
    let rows: Vec<String> = (0..grams.len())
        .map(|i| format!("(${}, $1)", i + 2))
        .collect();
    let sql = format!(
        "INSERT INTO product_title_grams (gram, product) VALUES {} ON CONFLICT (gram, product) DO NOTHING",
        rows.join(",")
    );
    let mut q = sqlx::query(&sql).bind(product);
    for g in &grams {
        q = q.bind(g);
    }
    q.execute(&mut **tx).await?;
    Ok(true)
}

/// Make a transaction that reads before it writes a writer from its first statement. On SQLite
/// a transaction that began by reading cannot become the writer once another has committed
/// since (`SQLITE_BUSY_SNAPSHOT`, which no busy timeout waits out): concurrent imports failed
/// so under `procure bench products`. On PostgreSQL it locks the product's row, if there is one,
/// so two imports of one product take turns.
async fn take_write_lock(tx: &mut Transaction<'_, Any>, id: &str) -> Result<()> {
    sqlx::query("UPDATE products SET updated_at_ms = updated_at_ms WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn product_in(tx: &mut Transaction<'_, Any>, id: &str) -> Result<Option<StoredProduct>> {
    let row: Option<ProductRow> = sqlx::query_as(&format!("{SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(StoredProduct::try_from).transpose()
}

/// The title index of the matching suggestion (table `product_title_grams`,
/// [`procure_domain::matching::title_grams`]): which imported products share words with a title.
impl Store {
    /// Active imported products other than `product` (of `platform`, when given) whose titles
    /// share the most grams with `title`, at most `limit`, most shared first: the candidates
    /// of a matching suggestion.
    pub async fn products_sharing_title(
        &self,
        product: &str,
        title: &str,
        platform: Option<Platform>,
        limit: i64,
    ) -> Result<Vec<StoredProduct>> {
        let grams = title_grams(title);
        if grams.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT g.product, COUNT(*) AS shared FROM product_title_grams g JOIN products p ON p.id = g.product \
             WHERE g.product <> $1 AND p.status = 'active' AND ($3 = '' OR p.platform = $3) \
             AND g.gram IN ({}) GROUP BY g.product ORDER BY COUNT(*) DESC, g.product LIMIT $2",
            placeholders(4, grams.len())
        );
        let mut q = sqlx::query_as::<_, (String, i64)>(&sql)
            .bind(product)
            .bind(limit)
            .bind(platform.map_or("", Platform::as_str));
        for g in &grams {
            q = q.bind(g);
        }
        let ids = q.fetch_all(self.pool()).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("{SELECT} WHERE id IN ({})", placeholders(1, ids.len()));
        let mut q = sqlx::query_as::<_, ProductRow>(&sql);
        for (id, _) in &ids {
            q = q.bind(id);
        }
        let mut conn = self.pool().acquire().await?;
        let mut rows = q.fetch_all(&mut *conn).await?;
        // Most shared grams first, as the index ranked them.
        rows.sort_by_key(|r| ids.iter().position(|(id, _)| *id == r.id));
        let products = rows
            .into_iter()
            .map(StoredProduct::try_from)
            .collect::<Result<Vec<_>>>()?;
        with_offers_all(&mut conn, products).await
    }

    /// Index the titles of products that have no grams yet (imported before the index
    /// existed); answers how many. Safe to run at every start.
    pub async fn index_product_titles(&self) -> Result<usize> {
        let missing: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, title FROM products p WHERE NOT EXISTS \
             (SELECT 1 FROM product_title_grams g WHERE g.product = p.id)",
        )
        .fetch_all(self.pool())
        .await?;
        let mut indexed = 0;
        for (id, title) in missing {
            let mut tx = self.pool().begin().await?;
            indexed += usize::from(index_title(&mut tx, &id, &title).await?);
            tx.commit().await?;
        }
        Ok(indexed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_fit_a_listing_sku() {
        assert_eq!(product_key(Platform::Alibaba1688, "610001"), "1688-610001");
        assert_eq!(sku_key("1688-610001", ""), "1688-610001-0");
        let a = sku_key("1688-610001", "7c2e9a4b1d6f8035c4e2a1b9d7f6e5c3");
        assert_eq!(
            a,
            sku_key("1688-610001", "7c2e9a4b1d6f8035c4e2a1b9d7f6e5c3")
        );
        assert_ne!(
            a,
            sku_key("1688-610001", "7c2e9a4b1d6f8035c4e2a1b9d7f6e5c4")
        );
        // A Pinduoduo goods_sign is the longest id: the sku still fits 64 characters.
        let pdd = product_key(
            Platform::Pinduoduo,
            "E9T2ftu0pKBiHnY0wxvOSdSBVlT8gOgU_JQJiwNuCHK",
        );
        assert!(sku_key(&pdd, "1234_5678").len() <= 64);
    }
}
