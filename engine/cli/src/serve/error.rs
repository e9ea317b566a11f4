//! The error answer of every method.

/// An error answer: a snake_case code and a message for people.
pub struct ApiError {
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn params(message: impl std::fmt::Display) -> ApiError {
        ApiError::new("invalid_params", message.to_string())
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new("internal", message)
    }
}
