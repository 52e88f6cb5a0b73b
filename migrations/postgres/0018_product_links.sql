-- Products across replicas and platforms (README "Products").
--
-- products.version: one more on every change of a product (import, refresh, delisting, a price
-- monitor's run, a link to an alternative). A cached answer carries the version it was built
-- from, so a replica never keeps or shares an answer older than a change it has seen; wall
-- clocks of different hosts cannot order changes, a counter in the row can.
ALTER TABLE products ADD COLUMN version BIGINT NOT NULL DEFAULT 1;

-- Alternatives: the same product sold elsewhere (another platform, or another seller), linked
-- by an operator. A link is kept in both directions, so each SKU's offers are candidates for the
-- other and procurement ranks and fails over across platforms. (platform, offer_id, spec_id):
-- the alternative listing's channel when it was linked, what the link shows (a price monitor
-- may later quote either listing from the other's offer). confidence_bps: how sure the matching
-- suggestion was of the pair, when both are imported products.
CREATE TABLE sku_alternatives (
    sku TEXT NOT NULL REFERENCES listings (sku),
    alternative_sku TEXT NOT NULL REFERENCES listings (sku),
    platform TEXT NOT NULL,
    offer_id TEXT NOT NULL,
    spec_id TEXT NOT NULL,
    confidence_bps BIGINT,
    linked_by TEXT NOT NULL,
    linked_at_ms BIGINT NOT NULL,
    PRIMARY KEY (sku, alternative_sku),
    CHECK (sku <> alternative_sku)
);
CREATE INDEX sku_alternatives_alternative_idx ON sku_alternatives (alternative_sku);

-- The inverted index of product titles the matching suggestion finds its candidates by: each
-- product's normalized title grams (procure_domain::matching::title_grams).
CREATE TABLE product_title_grams (
    gram TEXT NOT NULL,
    product TEXT NOT NULL REFERENCES products (id),
    PRIMARY KEY (gram, product)
);
CREATE INDEX product_title_grams_product_idx ON product_title_grams (product);

-- A listing with offers on several platforms (a seeded one) is adopted by the product of each
-- of them, so one sku may belong to several products: no longer unique in product_skus.
ALTER TABLE product_skus DROP CONSTRAINT product_skus_sku_key;
CREATE INDEX product_skus_sku_idx ON product_skus (sku);
