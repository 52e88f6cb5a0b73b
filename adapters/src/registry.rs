//! The one map from a [`Platform`] to its clients: the price source every platform has, and the
//! buyer API where the platform has one (Pinduoduo has none: buying there is an assisted task).

use std::sync::Arc;

use procure_domain::order::Platform;

use crate::{
    alibaba::{Alibaba1688, AlibabaConfig},
    http::BuildError,
    market::{BuyerMarketplace, MarketError, OfferPrice, PriceSource},
    pdd::{Pdd, PddConfig},
    taobao::{Taobao, TaobaoConfig},
};

/// The marketplaces we price (and, where an API allows, buy) on. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Marketplaces {
    alibaba: Alibaba1688,
    taobao: Taobao,
    pdd: Pdd,
}

/// One platform's clients.
struct Clients<'a> {
    prices: &'a dyn PriceSource,
    buyer: Option<&'a dyn BuyerMarketplace>,
}

impl Marketplaces {
    pub fn new(
        alibaba: AlibabaConfig,
        taobao: TaobaoConfig,
        pdd: PddConfig,
    ) -> Result<Self, BuildError> {
        Ok(Marketplaces {
            alibaba: Alibaba1688::new(alibaba)?,
            taobao: Taobao::new(taobao)?,
            pdd: Pdd::new(pdd)?,
        })
    }

    /// The one place a platform is mapped to its clients.
    fn clients(&self, platform: Platform) -> Clients<'_> {
        match platform {
            Platform::Alibaba1688 => Clients {
                prices: &self.alibaba,
                buyer: Some(&self.alibaba),
            },
            Platform::Taobao => Clients {
                prices: &self.taobao,
                buyer: Some(&self.taobao),
            },
            Platform::Pinduoduo => Clients {
                prices: &self.pdd,
                buyer: None,
            },
        }
    }

    /// The platform's price lookups.
    pub fn prices(&self, platform: Platform) -> &dyn PriceSource {
        self.clients(platform).prices
    }

    /// The platform's buyer API with the configured credentials; `None` where it has none.
    pub fn buyer(&self, platform: Platform) -> Option<&dyn BuyerMarketplace> {
        self.clients(platform).buyer
    }

    /// A buyer client of `platform` for one buyer account (its own access token, or the
    /// configured one when `None`). `Ok(None)`: the platform has no buyer API.
    pub fn buyer_for(
        &self,
        platform: Platform,
        access_token: Option<procure_domain::Secret>,
    ) -> Result<Option<Arc<dyn BuyerMarketplace>>, BuildError> {
        self.buyer(platform)
            .map(|b| b.for_account(access_token))
            .transpose()
    }

    /// The current unit price (fen) of one offer and, where the platform reports it, the
    /// units on sale. `Ok(None)`: the listing (or that spec of it) is gone or not buyable.
    /// `spec_id` is the 1688 spec / Taobao sku; PDD prices a listing as a whole and ignores it
    /// (its price is the group-buy price, see [`crate::PddGoods::best_price_fen`]). An empty
    /// `spec_id` matches a listing's only spec.
    pub async fn offer_price(
        &self,
        platform: Platform,
        offer_id: &str,
        spec_id: &str,
    ) -> Result<Option<OfferPrice>, MarketError> {
        match self.prices(platform).offer_price(offer_id, spec_id).await {
            Err(MarketError::ListingGone) => Ok(None),
            other => other,
        }
    }
}
