//! The operations the simulator serves: their names, the quota each falls under.

/// The operations the simulator serves, in the order stats report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    DescribeJobExecution,
    ListJobExecutionsForJob,
    ListJobExecutionsForThing,
    ListJobs,
    DescribeJob,
    CancelJobExecution,
    DeleteJobExecution,
    SearchIndex,
    GetThingConnectivityData,
    ListThingGroupsForThing,
    ListThings,
    ListThingGroups,
    ListThingsInThingGroup,
}

/// How many operations the simulator serves.
pub(crate) const OPERATIONS: usize = 13;

impl Operation {
    pub const ALL: [Operation; OPERATIONS] = [
        Operation::DescribeJobExecution,
        Operation::ListJobExecutionsForJob,
        Operation::ListJobExecutionsForThing,
        Operation::ListJobs,
        Operation::DescribeJob,
        Operation::CancelJobExecution,
        Operation::DeleteJobExecution,
        Operation::SearchIndex,
        Operation::GetThingConnectivityData,
        Operation::ListThingGroupsForThing,
        Operation::ListThings,
        Operation::ListThingGroups,
        Operation::ListThingsInThingGroup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operation::DescribeJobExecution => "DescribeJobExecution",
            Operation::ListJobExecutionsForJob => "ListJobExecutionsForJob",
            Operation::ListJobExecutionsForThing => "ListJobExecutionsForThing",
            Operation::ListJobs => "ListJobs",
            Operation::DescribeJob => "DescribeJob",
            Operation::CancelJobExecution => "CancelJobExecution",
            Operation::DeleteJobExecution => "DeleteJobExecution",
            Operation::SearchIndex => "SearchIndex",
            Operation::GetThingConnectivityData => "GetThingConnectivityData",
            Operation::ListThingGroupsForThing => "ListThingGroupsForThing",
            Operation::ListThings => "ListThings",
            Operation::ListThingGroups => "ListThingGroups",
            Operation::ListThingsInThingGroup => "ListThingsInThingGroup",
        }
    }

    /// Whether the operation is one a diagnosis makes for context (its quota is
    /// `context_quota_rps`).
    pub fn is_context(self) -> bool {
        matches!(
            self,
            Operation::DescribeJob
                | Operation::SearchIndex
                | Operation::GetThingConnectivityData
                | Operation::ListThingGroupsForThing
                | Operation::ListThings
                | Operation::ListThingGroups
                | Operation::ListThingsInThingGroup
        )
    }

    /// Whether the operation changes the fleet (its quota is `remediation_quota_rps`).
    pub fn changes_fleet(self) -> bool {
        matches!(
            self,
            Operation::CancelJobExecution | Operation::DeleteJobExecution
        )
    }
}
