//! The record of a request the mock received, which tests check (auth headers, paths, bodies).

use std::collections::HashMap;

use serde_json::Value;

/// One request the mock received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// The path with its query.
    pub path: String,
    /// Lower-cased header names.
    pub headers: HashMap<String, String>,
    /// The JSON body (`Null` when it was not JSON).
    pub body: Value,
}

impl RecordedRequest {
    pub(super) fn new(parts: &hyper::http::request::Parts, path: &str, body: &Value) -> Self {
        let mut headers: HashMap<String, String> = HashMap::new();
        for (name, value) in &parts.headers {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            // A repeated header reads as one, comma-joined, as HTTP allows.
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|existing| {
                    existing.push_str(", ");
                    existing.push_str(&value);
                })
                .or_insert(value);
        }
        RecordedRequest {
            method: parts.method.to_string(),
            version: format!("{:?}", parts.version),
            path: path.to_owned(),
            headers,
            body: body.clone(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}
