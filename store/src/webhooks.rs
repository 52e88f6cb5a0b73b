//! Signed webhook deliveries seen recently, so a replayed delivery (the same signature within
//! the window) is refused.

use crate::db::{Result, Store};
use procure_domain::clock::now_ms;
use std::time::Duration;

impl Store {
    /// Record a signed webhook delivery; false when the same signature was seen within
    /// `window` (a replay). Deliveries older than the window are forgotten.
    pub async fn claim_webhook_delivery(
        &self,
        provider: &str,
        signature: &str,
        window: Duration,
    ) -> Result<bool> {
        let now = now_ms();
        let horizon = now - window.as_millis() as i64;
        sqlx::query("DELETE FROM webhook_deliveries WHERE received_at_ms < $1")
            .bind(horizon)
            .execute(self.pool())
            .await?;
        let n = sqlx::query(
            "INSERT INTO webhook_deliveries (provider, signature, received_at_ms) VALUES ($1,$2,$3) \
             ON CONFLICT (provider, signature) DO NOTHING",
        )
        .bind(provider)
        .bind(signature)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Forget a claimed delivery whose processing failed, so the provider's retry is accepted.
    pub async fn release_webhook_delivery(&self, provider: &str, signature: &str) -> Result<()> {
        sqlx::query("DELETE FROM webhook_deliveries WHERE provider = $1 AND signature = $2")
            .bind(provider)
            .bind(signature)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
