//! The one map from a [`Platform`] to its clients: the price source and the product detail every
//! platform has, and the buyer API where the platform has one (Pinduoduo has none: buying there
//! is an assisted task).

use std::sync::Arc;

use procure_domain::order::Platform;
use procure_domain::product_link::{IdKind, ProductRef};

use crate::{
    alibaba::{Alibaba1688, AlibabaConfig},
    http::BuildError,
    market::{
        BuyerMarketplace, MarketError, OfferPrice, PriceSource, ProductDetail, ProductSource,
    },
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
    products: &'a dyn ProductSource,
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
                products: &self.alibaba,
                buyer: Some(&self.alibaba),
            },
            Platform::Taobao => Clients {
                prices: &self.taobao,
                products: &self.taobao,
                buyer: Some(&self.taobao),
            },
            Platform::Pinduoduo => Clients {
                prices: &self.pdd,
                products: &self.pdd,
                buyer: None,
            },
        }
    }

    /// The platform's price lookups.
    pub fn prices(&self, platform: Platform) -> &dyn PriceSource {
        self.clients(platform).prices
    }

    /// The platform's product detail reads.
    pub fn products(&self, platform: Platform) -> &dyn ProductSource {
        self.clients(platform).products
    }

    /// A product's detail by the id its detail API takes (1688 offer id, Taobao item id, PDD
    /// `goods_sign`). A listing that is gone is [`MarketError::ListingGone`]; every other
    /// failure is the vendor's error.
    pub async fn product(
        &self,
        platform: Platform,
        product_id: &str,
    ) -> Result<ProductDetail, MarketError> {
        self.products(platform).product(product_id).await
    }

    /// The id a product's detail API takes for what a link or `{platform, id}` named: the id
    /// itself, or for a Pinduoduo numeric `goods_id` its `goods_sign`
    /// ([`Pdd::resolve_goods_id`]). This is the offer id the product is bought and priced by.
    pub async fn resolve(&self, product: &ProductRef) -> Result<String, MarketError> {
        match product.kind {
            IdKind::PddGoodsId => self.pdd.resolve_goods_id(&product.id).await,
            IdKind::OfferId | IdKind::ItemId | IdKind::PddGoodsSign => Ok(product.id.clone()),
        }
    }

    /// The detail of what a link or `{platform, id}` named ([`resolve`](Self::resolve), then
    /// [`product`](Self::product)).
    pub async fn product_by_ref(&self, product: &ProductRef) -> Result<ProductDetail, MarketError> {
        let id = self.resolve(product).await?;
        self.product(product.platform, &id).await
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
