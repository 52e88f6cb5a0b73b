//! Products for any id the seeded catalogue does not hold, so that importing an arbitrary
//! marketplace link works against the sandbox. A product is a pure function of its platform and
//! id: a 64-bit FNV-1a hash of `"{platform}:{id}"` seeds a splitmix64 stream, and every draw
//! (title, images, attributes, 1–4 SKUs, prices, stock, minimum order, seller, weight and size)
//! comes from it in a fixed order. No randomness, no state: the same id always answers the same
//! product, on every sandbox. Each vendor module renders it in its own documented shape
//! (docs/sandbox-wire.md, "Products for any id").
//!
//! Which ids are generated (the vendor modules decide, after the seeded catalogue):
//! 1688 and Taobao ids that are Longs (1 to 19 digits, no leading 0), any Pinduoduo
//! `goods_sign` token. Anything else answers "no such product" as before.

/// The domestic carriage a generated product's seller charges per order (fen): 1688's
/// `sumCarriage` share, Taobao's `postFee`.
pub(crate) const CARRIAGE_FEN: i64 = 500;

/// One generated SKU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GenSku {
    /// 1688 `specId`: 32 lower-case hex digits.
    pub(crate) spec_id: String,
    /// A 13-digit number: the 1688 `skuId` and the Taobao `sku_id`.
    pub(crate) sku_id: u64,
    /// `(dimension, value)` pairs, with the PDD `(parent_spec_id, spec_id)` of each.
    pub(crate) specs: Vec<GenSpec>,
    pub(crate) price_fen: i64,
    pub(crate) stock: i64,
    /// An image file name (each vendor module puts it under its own host).
    pub(crate) image: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GenSpec {
    pub(crate) name: &'static str,
    pub(crate) value: &'static str,
    pub(crate) parent_id: u64,
    pub(crate) value_id: u64,
}

/// One generated product.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GenProduct {
    pub(crate) title: String,
    /// Image file names, main image first.
    pub(crate) images: Vec<String>,
    pub(crate) attributes: Vec<(&'static str, &'static str)>,
    pub(crate) skus: Vec<GenSku>,
    /// Minimum order quantity (1688 `minOrderQuantity`, Taobao `begin_amount`).
    pub(crate) moq: u32,
    pub(crate) seller_id: u64,
    pub(crate) seller_name: String,
    /// Weight of one unit (absent for about a quarter of the ids).
    pub(crate) weight_g: Option<u32>,
    /// Length, width, height in mm, whole centimetres (absent for about a third).
    pub(crate) dims_mm: Option<(u32, u32, u32)>,
    /// A 4-digit category id.
    pub(crate) category_id: u64,
}

impl GenProduct {
    /// The lowest SKU price: PDD's `min_group_price`.
    pub(crate) fn min_price_fen(&self) -> i64 {
        self.skus.iter().map(|s| s.price_fen).min().unwrap_or(0)
    }

    pub(crate) fn total_stock(&self) -> i64 {
        self.skus.iter().map(|s| s.stock).sum()
    }
}

/// Whether an id is a Long as 1688 and Taobao spell theirs.
pub(crate) fn is_long_id(id: &str) -> bool {
    (1..=19).contains(&id.len())
        && !id.starts_with('0')
        && id.bytes().all(|b| b.is_ascii_digit())
        && id.parse::<i64>().is_ok()
}

fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// splitmix64: a small, well-mixed deterministic stream.
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[(self.next() % from.len() as u64) as usize]
    }

    fn hex(&mut self, digits: usize) -> String {
        let mut s = String::with_capacity(digits);
        while s.len() < digits {
            s.push_str(&format!("{:016x}", self.next()));
        }
        s.truncate(digits);
        s
    }
}

const MATERIALS: &[&str] = &[
    "陶瓷",
    "不锈钢",
    "棉",
    "硅胶",
    "竹",
    "ABS塑料",
    "玻璃",
    "铝合金",
];
const ADJECTIVES: &[&str] = &[
    "Classic", "Portable", "Minimal", "Deluxe", "Compact", "Foldable", "Vintage", "Eco",
];
const NOUNS: &[&str] = &[
    "tea cup",
    "storage box",
    "desk organiser",
    "water bottle",
    "phone stand",
    "tote bag",
    "cutting board",
    "table lamp",
    "travel pillow",
    "lunch box",
    "hair clip set",
    "notebook",
];
const COLOURS: &[&str] = &["白色", "黑色", "灰色", "蓝色", "粉色", "绿色"];
const SIZES: &[&str] = &["S", "M", "L", "XL"];
const CAPACITIES: &[&str] = &["350ml", "500ml", "750ml", "1L"];
const ORIGINS: &[&str] = &["浙江义乌", "广东深圳", "福建泉州", "江苏苏州", "山东青岛"];
const STYLES: &[&str] = &["简约", "北欧", "日式", "复古", "卡通"];

/// PDD-style spec ids: a parent id per dimension, a value id per value.
const COLOUR_PARENT: u64 = 1215;
const SECOND_PARENT: u64 = 1226;

/// The product of `platform` (`1688`, `taobao`, `pinduoduo`) and `id`.
pub(crate) fn generate(platform: &str, id: &str) -> GenProduct {
    let seed = fnv1a(platform.bytes().chain([b':']).chain(id.bytes()));
    let mut d = Draws(seed);
    let adjective = d.pick(ADJECTIVES);
    let noun = d.pick(NOUNS);
    let material = d.pick(MATERIALS);
    let style = d.pick(STYLES);
    let origin = d.pick(ORIGINS);
    let model = d.range(100, 999);
    let title = format!("{adjective} {noun} {model} ({material})");
    let image_stem = d.hex(16);
    let images = (1..=d.range(1, 4))
        .map(|n| format!("{image_stem}_{n}.jpg"))
        .collect();
    let attributes = vec![("材质", material), ("风格", style), ("产地", origin)];

    // 1 to 4 SKUs: colours alone, or colours × a second dimension (sizes or capacities).
    let count = d.range(1, 4) as usize;
    let second: &[&str] = if d.next().is_multiple_of(2) {
        SIZES
    } else {
        CAPACITIES
    };
    let second_name = if second == SIZES { "尺码" } else { "容量" };
    let (colours, others) = if count == 4 { (2, 2) } else { (count, 1) };
    let colour_start = d.range(0, (COLOURS.len() - colours) as u64) as usize;
    let other_start = d.range(0, (second.len() - others) as u64) as usize;
    let base_fen = (d.range(3, 900) * 100) as i64 + d.pick(&[0i64, 50, 90]);
    let moq = d.pick(&[1u32, 1, 1, 2, 3, 5, 10]);
    let mut skus = Vec::with_capacity(count);
    for c in 0..colours {
        for o in 0..others {
            let colour = COLOURS[colour_start + c];
            let mut specs = vec![GenSpec {
                name: "颜色",
                value: colour,
                parent_id: COLOUR_PARENT,
                value_id: 10_000 + (colour_start + c) as u64,
            }];
            if others > 1 {
                specs.push(GenSpec {
                    name: second_name,
                    value: second[other_start + o],
                    parent_id: SECOND_PARENT,
                    value_id: 20_000 + (other_start + o) as u64,
                });
            }
            // The larger variants cost a little more.
            let price_fen = base_fen + (o as i64) * 200 + (d.range(0, 3) as i64) * 10;
            skus.push(GenSku {
                spec_id: d.hex(32),
                sku_id: d.range(1_000_000_000_000, 9_999_999_999_999),
                specs,
                price_fen,
                stock: d.range(20, 9_999) as i64,
                image: format!("{image_stem}_sku{}.jpg", skus.len() + 1),
            });
        }
    }
    let seller_id = d.range(100_000_000, 999_999_999);
    let seller_name = format!("{}{}工厂店", origin, d.range(10, 99));
    let weight_g = (!d.next().is_multiple_of(4)).then(|| d.range(50, 3_000) as u32);
    let dims_mm = (!d.next().is_multiple_of(3)).then(|| {
        (
            d.range(5, 60) as u32 * 10,
            d.range(5, 40) as u32 * 10,
            d.range(1, 30) as u32 * 10,
        )
    });
    GenProduct {
        title,
        images,
        attributes,
        skus,
        moq,
        seller_id,
        seller_name,
        weight_g,
        dims_mm,
        category_id: d.range(1000, 9999),
    }
}

/// `source` relisted on `platform` under `id` by another seller: what sellers who copy a listing
/// do. The product is the same (its description, attributes, variants and their values, weight
/// and size), its title carries the marketing words shops add, a Taobao shop names the colour
/// dimension `颜色分类` as Taobao's category template does, and the prices are 4 % higher. What
/// the marketplace gives the new listing (SKU ids, seller, images, stock, minimum order) is the
/// target's own, drawn as for any id, so buying it works as for any generated product.
pub(crate) fn relist(source: &GenProduct, platform: &str, id: &str) -> GenProduct {
    let own = generate(platform, id);
    let title = format!("【包邮】{} 新款", source.title);
    let skus = source
        .skus
        .iter()
        .enumerate()
        .map(|(i, s)| {
            // The target's own ids where it has as many variants, else ones derived from it.
            let mut d = Draws(fnv1a(id.bytes().chain([b'#', i as u8])));
            let ids = own.skus.get(i);
            GenSku {
                spec_id: ids.map_or_else(|| d.hex(32), |k| k.spec_id.clone()),
                sku_id: ids.map_or_else(
                    || d.range(1_000_000_000_000, 9_999_999_999_999),
                    |k| k.sku_id,
                ),
                specs: s
                    .specs
                    .iter()
                    .map(|sp| GenSpec {
                        name: match (platform, sp.name) {
                            ("taobao", "颜色") => "颜色分类",
                            (_, n) => n,
                        },
                        ..sp.clone()
                    })
                    .collect(),
                price_fen: s.price_fen * 104 / 100,
                stock: ids.map_or(s.stock, |k| k.stock),
                image: ids.map_or_else(|| s.image.clone(), |k| k.image.clone()),
            }
        })
        .collect();
    GenProduct {
        title,
        images: own.images,
        attributes: source.attributes.clone(),
        skus,
        moq: own.moq,
        seller_id: own.seller_id,
        seller_name: own.seller_name,
        weight_g: source.weight_g,
        dims_mm: source.dims_mm,
        category_id: source.category_id,
    }
}

/// A sandbox `goods_sign` for a numeric `goods_id` (what `pdd.ddk.goods.search` answers for
/// it): 12 hash characters, `_`, the id in base 36. [`goods_id_of_sign`] reads it back.
pub(crate) fn goods_sign_of(goods_id: u64) -> String {
    let h = fnv1a(goods_id.to_string().bytes());
    format!("E9{:010x}_{}", h & 0xff_ffff_ffff, base36(goods_id))
}

/// The `goods_id` a sandbox `goods_sign` was made from, if it was made by [`goods_sign_of`].
pub(crate) fn goods_id_of_sign(sign: &str) -> Option<u64> {
    let (_, tail) = sign.rsplit_once('_')?;
    let id = u64::from_str_radix(tail, 36).ok()?;
    (goods_sign_of(id) == sign).then_some(id)
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_id_is_the_same_product_and_ids_differ() {
        let a = generate("1688", "573741401425");
        let copy = relist(&a, "taobao", "695028137799");
        assert_eq!(copy, relist(&a, "taobao", "695028137799"));
        assert!(copy.title.contains(&a.title) && copy.title != a.title);
        assert_eq!(copy.skus.len(), a.skus.len());
        for (c, o) in copy.skus.iter().zip(&a.skus) {
            let values = |s: &GenSku| s.specs.iter().map(|p| p.value).collect::<Vec<_>>();
            assert_eq!(values(c), values(o), "the same variants");
            assert_ne!(c.sku_id, o.sku_id, "the relisting's own ids");
        }
        assert_eq!(a, generate("1688", "573741401425"));
        assert_ne!(a, generate("1688", "573741401426"));
        assert_ne!(a.title, generate("taobao", "573741401425").title);
    }

    #[test]
    fn every_product_is_well_formed_and_the_options_vary() {
        let (mut no_weight, mut no_dims) = (0, 0);
        let mut counts = [0usize; 5];
        for n in 0..400u64 {
            let p = generate("1688", &(600_000_000_000 + n * 7919).to_string());
            assert!((1..=4).contains(&p.skus.len()), "{p:?}");
            counts[p.skus.len()] += 1;
            assert!(!p.title.is_empty() && !p.images.is_empty());
            assert!(p.moq >= 1);
            for s in &p.skus {
                assert!(s.price_fen >= 300 && s.stock >= 20, "{s:?}");
                assert_eq!(s.spec_id.len(), 32);
                assert!(!s.specs.is_empty());
            }
            let mut ids: Vec<_> = p.skus.iter().map(|s| &s.spec_id).collect();
            ids.dedup();
            assert_eq!(ids.len(), p.skus.len());
            no_weight += usize::from(p.weight_g.is_none());
            no_dims += usize::from(p.dims_mm.is_none());
        }
        assert!(counts[1..].iter().all(|&c| c > 0), "{counts:?}");
        assert!((50..150).contains(&no_weight), "{no_weight}");
        assert!((80..190).contains(&no_dims), "{no_dims}");
    }

    #[test]
    fn a_goods_sign_reads_back_its_goods_id() {
        for id in [
            1u64,
            279_384_713_802,
            u64::from(u32::MAX),
            9_223_372_036_854_775_807,
        ] {
            let sign = goods_sign_of(id);
            assert_eq!(goods_id_of_sign(&sign), Some(id), "{sign}");
        }
        assert_eq!(
            goods_id_of_sign("Y9b2nbVjqNhKXeUbwfDb5bpU5a1DzN6D_JQ4YfgL4B"),
            None
        );
        assert!(is_long_id("573741401425"));
        assert!(!is_long_id("0123") && !is_long_id("tb123") && !is_long_id(""));
        assert!(!is_long_id("99999999999999999999"));
    }
}
