//! Following the sellers' domestic shipments of an order's bought lines: each line's purchase
//! from the store, then its marketplace's logistics API through the buyer account that bought
//! it (1688 `alibaba.trade.getLogisticsInfos.buyerView`, where `500_2` means "not shipped yet";
//! Taobao Global `/logistics/detail/get`, an empty list before the seller ships; docs/vendors/).
//! Every parcel found is recorded once (with its `order.seller_shipped` event). A Pinduoduo
//! line, or one a purchaser bought by hand, has no buyer API: its waybill is what the
//! purchaser's completion recorded.
//!
//! [`OrderActivitiesImpl::follow_seller_shipments`] is what the activity calls; it is
//! idempotent (a repeat records nothing new).

use crate::{errors::store_err, order::OrderActivitiesImpl};
use procure_domain::order::Platform;
use procure_store::shipments::{NewSellerShipment, ShipmentSource};
use procure_workflows::contract::{
    SellerShipment, SellerShipmentReport, SellerShipmentsRequest, UnshippedLine,
};
use temporalio_sdk::activities::ActivityError;

impl OrderActivitiesImpl {
    /// Where each bought line's shipment stands (see the module docs). A marketplace failure
    /// fails the activity (classified once, retryable or not); the workflow asks again later.
    #[tracing::instrument(skip(self, req), fields(order_id = %req.order_id))]
    pub async fn follow_seller_shipments(
        &self,
        req: &SellerShipmentsRequest,
    ) -> Result<SellerShipmentReport, ActivityError> {
        let mut report = SellerShipmentReport::default();
        let recorded = self
            .store
            .seller_shipments(&req.order_id)
            .await
            .map_err(store_err)?;
        for (line_no, account) in &req.lines {
            let Some(p) = self
                .store
                .line_purchase(&req.order_id, *line_no)
                .await
                .map_err(store_err)?
            else {
                continue;
            };
            let known: Vec<SellerShipment> = recorded
                .iter()
                .filter(|r| r.line_no == *line_no)
                .map(|r| SellerShipment {
                    line_no: *line_no,
                    platform: r.platform.clone(),
                    marketplace_order_id: r.marketplace_order_id.clone(),
                    carrier: r.carrier.clone(),
                    waybill: r.waybill.clone(),
                })
                .collect();
            let waiting = |status: String| UnshippedLine {
                line_no: *line_no,
                platform: p.platform.clone(),
                marketplace_order_id: p.marketplace_order_id.clone(),
                status,
            };
            let platform = match p.platform.parse::<Platform>() {
                Ok(platform @ (Platform::Alibaba1688 | Platform::Taobao)) if !p.assisted => {
                    Some(platform)
                }
                _ => None,
            };
            let Some(platform) = platform else {
                // No buyer API to ask: the purchaser's completion is all we know.
                if known.is_empty() {
                    report.waiting.push(waiting(
                        "bought by a purchaser by hand; no waybill entered (the warehouse can \
                         match the parcel by its label)"
                            .into(),
                    ));
                }
                report.shipped.extend(known);
                continue;
            };
            let account = self.buying_account(platform, account.as_deref()).await?;
            let client = self.client(platform, &account).await?;
            let id = p.marketplace_order_id.as_str();
            let parcels = client
                .logistics(id)
                .await
                .map_err(|e| procure_adapters::adapter_err(&e))?;
            if parcels.is_empty() {
                let status = if req.with_status {
                    client
                        .status_word(id)
                        .await
                        .map_err(|e| procure_adapters::adapter_err(&e))?
                } else {
                    "not shipped yet".into()
                };
                report.waiting.push(waiting(status));
                report.shipped.extend(known);
                continue;
            }
            for parcel in parcels {
                let new = NewSellerShipment {
                    order_id: req.order_id.clone(),
                    line_no: *line_no,
                    platform: p.platform.clone(),
                    marketplace_order_id: p.marketplace_order_id.clone(),
                    carrier: parcel.company.clone(),
                    waybill: parcel.bill_no.clone(),
                    source: ShipmentSource::Marketplace,
                };
                if self
                    .store
                    .record_seller_shipment(&new)
                    .await
                    .map_err(store_err)?
                {
                    tracing::info!(platform = platform.as_str(), marketplace_order = id, line = line_no, carrier = %parcel.company, "seller shipped");
                }
                report.shipped.push(SellerShipment {
                    line_no: *line_no,
                    platform: new.platform,
                    marketplace_order_id: new.marketplace_order_id,
                    carrier: new.carrier,
                    waybill: new.waybill,
                });
            }
        }
        Ok(report)
    }
}
