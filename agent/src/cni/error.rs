//! CNI error results: `{cniVersion, code, msg, details}` on stdout and a
//! non-zero exit. Codes 1-99 are the spec's; 100 and up are Tabby's.

use serde::Serialize;

/// Incompatible CNI version.
pub const INCOMPATIBLE_VERSION: u32 = 1;
/// Unsupported field in the network configuration.
pub const UNSUPPORTED_FIELD: u32 = 2;
/// Container unknown or does not exist (the netns is gone).
pub const UNKNOWN_CONTAINER: u32 = 3;
/// Invalid necessary environment variables.
pub const INVALID_ENV: u32 = 4;
/// I/O failure (reading stdin).
pub const IO_FAILURE: u32 = 5;
/// Failed to decode content (bad JSON).
pub const DECODING_FAILURE: u32 = 6;
/// Invalid network configuration.
pub const INVALID_CONFIG: u32 = 7;
/// Try again later: the node agent is not reachable or busy.
pub const TRY_AGAIN_LATER: u32 = 11;
/// STATUS: the plugin cannot serve ADD now.
pub const PLUGIN_NOT_AVAILABLE: u32 = 50;
/// The node agent refused the request (pool exhausted, bad request, ...).
pub const NODE_REFUSED: u32 = 100;
/// Building or removing the pod's interface failed in the kernel.
pub const INTERFACE_FAILED: u32 = 101;
/// CHECK found the pod's networking not as ADD left it.
pub const CHECK_FAILED: u32 = 102;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CNI error {code}: {msg}{}", if details.is_empty() { String::new() } else { format!(" ({details})") })]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The error result the runtime reads from stdout.
    pub fn to_json(&self, cni_version: &str) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'a> {
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        serde_json::to_string(&Out {
            cni_version,
            code: self.code,
            msg: &self.msg,
            details: &self.details,
        })
        .unwrap_or_else(|_| format!("{{\"code\":{}}}", self.code))
    }
}

/// A gRPC failure from the node: "unavailable" and timeouts mean the node
/// is starting, restarting or overloaded, which the runtime should retry.
pub fn from_grpc(what: &str, s: &tonic::Status) -> CniError {
    use tonic::Code;
    let code = match s.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Aborted | Code::Cancelled => {
            TRY_AGAIN_LATER
        }
        _ => NODE_REFUSED,
    };
    CniError::new(code, format!("{what}: {}", s.message()))
}
