//! The baseline workflow of `procure bench`: the same number of activity round trips as an order,
//! doing nothing, so the ratio between the two isolates what our own code costs.

use crate::contract::NoopActivities;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{ActivityOptions, LocalActivityOptions, WorkflowContext, WorkflowResult};

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct BareInput {
    pub activities: u32,
    pub local_activities: u32,
}

#[workflow]
#[derive(Default)]
pub struct BareWorkflow;

#[workflow_methods]
impl BareWorkflow {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: BareInput) -> WorkflowResult<u32> {
        let mut done = 0;
        for step in 0..input.activities {
            let opts = ActivityOptions::start_to_close_timeout(Duration::from_secs(30));
            done += ctx
                .execute_activity(NoopActivities::noop, step, opts)
                .await?
                - step
                + 1;
        }
        for step in 0..input.local_activities {
            let opts = LocalActivityOptions::builder()
                .start_to_close_timeout(Duration::from_secs(10))
                .build();
            done += ctx
                .execute_local_activity(NoopActivities::noop, step, opts)
                .await?
                - step
                + 1;
        }
        Ok(done)
    }
}
