//! The tariff file (`config/tariff.toml`): its shape and how it becomes the quote's [`Pricing`].

use super::*;

/// The tariff file's shape: `config/tariff.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TariffFile {
    service_fee: ServiceFee,
    insurance: Insurance,
    guarantee: GuaranteeFee,
    lines: Vec<ShippingLine>,
    destinations: Vec<DutyRule>,
}

/// Parse a tariff (the form of `config/tariff.toml`); `origin` names it in errors.
pub fn parse_tariff(text: &str, origin: &str) -> anyhow::Result<Pricing> {
    let t: TariffFile = Figment::from(Toml::string(text))
        .extract()
        .map_err(|e| anyhow::anyhow!("tariff {origin}: {e}"))?;
    anyhow::ensure!(!t.lines.is_empty(), "tariff {origin}: no shipping lines");
    for line in &t.lines {
        for c in &line.destinations {
            anyhow::ensure!(
                t.destinations.iter().any(|d| &d.country == c),
                "tariff {origin}: line {} serves {c}, which has no duty rule",
                line.code
            );
        }
    }
    Ok(Pricing {
        service_fee: t.service_fee,
        lines: t.lines,
        insurance: t.insurance,
        guarantee: t.guarantee,
        destinations: t
            .destinations
            .into_iter()
            .map(|duty| Destination { duty })
            .collect(),
    })
}

impl TariffSettings {
    /// The configured tariff, else the demo tariff.
    pub fn load(&self) -> anyhow::Result<Pricing> {
        match &self.file {
            None => parse_tariff(DEMO_TARIFF, "config/tariff.toml"),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the tariff {}", path.display()))?;
                parse_tariff(&text, &path.display().to_string())
            }
        }
    }
}
