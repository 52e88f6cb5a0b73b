-- The sellers' domestic shipments to the consolidation warehouse (docs/ARCHITECTURE.md, "An
-- order, end to end"): one row per bought line and waybill, as its marketplace's logistics API
-- reports it (1688 getLogisticsInfos.buyerView, Taobao Global /logistics/detail/get) or as the
-- purchaser who bought a line by hand entered it (`source`). The warehouse finds an order by the
-- waybill printed on a parcel (`seller_shipments_waybill_idx`); a waybill of two orders is an
-- exception for an operator.
CREATE TABLE seller_shipments (
    order_id TEXT NOT NULL REFERENCES orders (id),
    line_no BIGINT NOT NULL,
    platform TEXT NOT NULL,
    marketplace_order_id TEXT NOT NULL,
    carrier TEXT NOT NULL,
    waybill TEXT NOT NULL,
    source TEXT NOT NULL,
    recorded_at_ms BIGINT NOT NULL,
    PRIMARY KEY (order_id, line_no, waybill)
);
CREATE INDEX seller_shipments_waybill_idx ON seller_shipments (waybill);
