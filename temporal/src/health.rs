//! Whether Temporal answers: the readiness check of the API and the workers.

use std::time::Duration;

use temporalio_client::{NamespacedClient, tonic};
use temporalio_common::protos::temporal::api::workflowservice::v1::DescribeNamespaceRequest;

use crate::TemporalLink;

impl TemporalLink {
    /// Reach the frontend and describe our namespace within `within`: a read that needs the
    /// connection (and its credentials) to work and the namespace to exist.
    pub async fn ready(&self, within: Duration) -> anyhow::Result<()> {
        let check = async {
            let client = self.client().await?;
            let request = DescribeNamespaceRequest {
                namespace: client.namespace(),
                ..Default::default()
            };
            client
                .connection()
                .workflow_service()
                .describe_namespace(tonic::Request::new(request))
                .await
                .map_err(|s| anyhow::anyhow!("{:?}: {}", s.code(), s.message()))?;
            anyhow::Ok(())
        };
        tokio::time::timeout(within, check)
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {} ms", within.as_millis()))?
    }
}
