//! API errors and the `v1 Status` objects they are sent as.
//!
//! API conventions, "Response Status Kind": every error response carries a
//! `Status` with `status: Failure`, a machine-readable `reason`, the HTTP
//! `code` and `details` naming the object. kube-rs decodes exactly this body
//! into `kube::Error::Api(ErrorResponse { code, reason, .. })`, so the shape
//! matters more than the wording; the wording follows the apiserver's where a
//! client might match on it.

use serde_json::{json, Value};

/// What identifies the object an error is about (`Status.details`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    pub name: String,
    pub group: String,
    /// The resource's plural, as the apiserver puts in `details.kind`.
    pub kind: String,
}

/// An API error: one reason from the conventions' list, with its HTTP code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    NotFound { message: String, details: Details },
    #[error("{message}")]
    AlreadyExists { message: String, details: Details },
    #[error("{message}")]
    Conflict { message: String, details: Details },
    /// 410 for a watch or an exact list from a compacted resourceVersion.
    #[error("{0}")]
    Expired(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 504 for a resourceVersion newer than the store's (the apiserver's
    /// "Too large resource version").
    #[error("{0}")]
    Timeout(String),
}

impl ApiError {
    pub fn not_found(d: &Details) -> Self {
        let what = if d.group.is_empty() {
            d.kind.clone()
        } else {
            format!("{}.{}", d.kind, d.group)
        };
        ApiError::NotFound {
            message: format!("{what} \"{}\" not found", d.name),
            details: d.clone(),
        }
    }

    pub fn already_exists(d: &Details) -> Self {
        let what = if d.group.is_empty() {
            d.kind.clone()
        } else {
            format!("{}.{}", d.kind, d.group)
        };
        ApiError::AlreadyExists {
            message: format!("{what} \"{}\" already exists", d.name),
            details: d.clone(),
        }
    }

    /// The apiserver's optimistic-concurrency failure (API conventions,
    /// "Concurrency Control and Consistency").
    pub fn modified(d: &Details) -> Self {
        let what = if d.group.is_empty() {
            d.kind.clone()
        } else {
            format!("{}.{}", d.kind, d.group)
        };
        ApiError::Conflict {
            message: format!(
                "Operation cannot be fulfilled on {what} \"{}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                d.name
            ),
            details: d.clone(),
        }
    }

    pub fn precondition(d: &Details, message: String) -> Self {
        ApiError::Conflict {
            message,
            details: d.clone(),
        }
    }

    pub fn too_old(requested: u64, oldest: u64) -> Self {
        ApiError::Expired(format!("too old resource version: {requested} ({oldest})"))
    }

    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } => 404,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => 409,
            ApiError::Expired(_) => 410,
            ApiError::BadRequest(_) => 400,
            ApiError::Invalid(_) => 422,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::Timeout(_) => 504,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Expired(_) => "Expired",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Invalid(_) => "Invalid",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::Timeout(_) => "Timeout",
        }
    }

    /// The `v1 Status` body for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        if let ApiError::NotFound { details, .. }
        | ApiError::AlreadyExists { details, .. }
        | ApiError::Conflict { details, .. } = self
        {
            status["details"] = json!({
                "name": details.name,
                "group": details.group,
                "kind": details.kind,
            });
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_status_has_the_fields_kube_rs_decodes() {
        let d = Details {
            name: "p".into(),
            group: String::new(),
            kind: "pods".into(),
        };
        let s = ApiError::modified(&d).to_status();
        assert_eq!(s["code"], 409);
        assert_eq!(s["reason"], "Conflict");
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["details"]["kind"], "pods");
        assert!(s["message"]
            .as_str()
            .unwrap_or_default()
            .contains("the object has been modified"));
    }
}
