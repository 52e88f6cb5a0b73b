-- Imported products (README "Products"): any 1688, Taobao or Pinduoduo product a customer pastes
-- a link to, as its marketplace's detail API describes it, with every SKU. Each SKU is also a
-- listing (quoted and ordered by its `sku`) and an offer (a procurement candidate), so an offer
-- is now one SKU of a marketplace product: `offers` is keyed by (platform, offer_id, spec_id).
--
-- products.data: the product as the API serves it (title, images, attributes, seller, minimum
-- order quantity, SKUs), JSON; weight and size are the marketplace's, or an estimate
-- (`measures_estimated` = 1). `fetched_at_ms`: when the marketplace was last read; a quote uses
-- the stored price only within the freshness window after it.
CREATE TABLE products (
    id TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    product_id TEXT NOT NULL,
    title TEXT NOT NULL,
    data TEXT NOT NULL,
    weight_g BIGINT NOT NULL,
    l_mm BIGINT NOT NULL,
    w_mm BIGINT NOT NULL,
    h_mm BIGINT NOT NULL,
    measures_estimated BIGINT NOT NULL,
    status TEXT NOT NULL,
    fetched_at_ms BIGINT NOT NULL,
    imported_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    UNIQUE (platform, product_id)
);
CREATE INDEX products_title_idx ON products (title);

CREATE TABLE product_skus (
    product TEXT NOT NULL REFERENCES products (id),
    spec_id TEXT NOT NULL,
    sku TEXT NOT NULL UNIQUE REFERENCES listings (sku),
    position BIGINT NOT NULL,
    PRIMARY KEY (product, spec_id)
);

CREATE TABLE offers_by_spec (
    platform TEXT NOT NULL,
    offer_id TEXT NOT NULL,
    sku TEXT NOT NULL REFERENCES listings (sku),
    spec_id TEXT NOT NULL,
    price_fen BIGINT NOT NULL,
    domestic_shipping_fen BIGINT NOT NULL,
    stock BIGINT,
    active BIGINT NOT NULL DEFAULT 1,
    attempts BIGINT NOT NULL DEFAULT 0,
    successes BIGINT NOT NULL DEFAULT 0,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (platform, offer_id, spec_id)
);
INSERT INTO offers_by_spec (platform, offer_id, sku, spec_id, price_fen, domestic_shipping_fen, stock,
    active, attempts, successes, updated_at_ms)
SELECT platform, offer_id, sku, spec_id, price_fen, domestic_shipping_fen, stock, active, attempts,
    successes, updated_at_ms FROM offers;
DROP TABLE offers;
ALTER TABLE offers_by_spec RENAME TO offers;
CREATE INDEX offers_sku_idx ON offers (sku);
