//! The calls to AWS: the clients behind traits (`client`: `aws-sdk-iot`, Organizations, a fake and a
//! fault injector), the accounts and regions a run calls (`targets`), and the one call layer every
//! call goes through (`call`: a `limit` token per attempt, `retry`'s classes and backoff).

pub mod call;
pub mod client;
pub mod limit;
pub mod retry;
pub mod targets;
