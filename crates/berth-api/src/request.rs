//! Reading a request: the query string, `filters`, dockerd's booleans, times, references
//! and bodies.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::Value;

use crate::{ApiError, MAX_BODY};

/// The query string as a map (later keys win).
pub fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// The `filters` query parameter: `{"key": ["v", ...]}` (or the older `{"key": {"v": true}}`).
pub fn filters(q: &HashMap<String, String>) -> Result<HashMap<String, Vec<String>>, ApiError> {
    let Some(f) = q.get("filters").filter(|f| !f.is_empty()) else {
        return Ok(HashMap::new());
    };
    let v: Value = serde_json::from_str(f).map_err(|e| ApiError::bad(format!("invalid filters: {e}")))?;
    let mut m = HashMap::new();
    for (k, vals) in v.as_object().into_iter().flatten() {
        let list: Vec<String> = match vals {
            Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
            Value::Object(o) => o.keys().cloned().collect(),
            _ => Vec::new(),
        };
        m.insert(k.clone(), list);
    }
    Ok(m)
}

/// A path segment with its `%XX` escapes decoded (`+` stays a plus: it means a space only
/// in a query).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// A boolean query parameter as dockerd reads every one (`httputils.BoolValue`): false when
/// absent, empty, `0`, `no`, `false` or `none` in any case (spaces trimmed), true otherwise.
pub fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    flag_or(q, k, false)
}

/// [`flag`] with a default for when the parameter is absent (`httputils.BoolValueOrDefault`:
/// present but empty still reads as false).
pub fn flag_or(q: &HashMap<String, String>, k: &str, default: bool) -> bool {
    match q.get(k) {
        None => default,
        Some(v) => {
            let v = v.trim().to_ascii_lowercase();
            !matches!(v.as_str(), "" | "0" | "no" | "false" | "none")
        }
    }
}

/// Reads a JSON body (at most [`MAX_BODY`]); an empty body is `null`.
pub async fn json_body(req: Request<Incoming>) -> Result<Value, ApiError> {
    let body = read_body(req, MAX_BODY).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("invalid JSON: {e}")))
}

/// Reads a body up to `limit` bytes.
pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(req.into_body(), limit);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {limit} bytes"),
        )),
        Err(e) => Err(ApiError::bad(format!("reading the request body: {e}"))),
    }
}

/// `repo` and `tag` query parameters as one reference (none without `repo`).
pub fn repo_tag(q: &HashMap<String, String>) -> Result<Option<berth_oci::Reference>, ApiError> {
    let Some(repo) = q.get("repo").filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let full = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.clone(),
    };
    berth_oci::Reference::parse(&full)
        .map(Some)
        .map_err(|e| ApiError::bad(format!("invalid reference format: {e}")))
}

/// The prune filters dockerd takes for containers: `label` (`k`, `k=v`), `label!`
/// (`label!=k=v`: not that label) and `until` (a time, or a duration before now).
/// Anything else is refused: a prune must never take more than it was asked to.
pub fn prune_filter(
    q: &HashMap<String, String>,
    allowed: &[&str],
) -> Result<impl Fn(&BTreeMap<String, String>, &str) -> bool + Send + 'static, ApiError> {
    let f = filters(q)?;
    for k in f.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::bad(format!("invalid filter '{k}'")));
        }
    }
    let until = match f.get("until") {
        None => None,
        Some(vals) => {
            let v = vals.first().cloned().unwrap_or_default();
            Some(time_nanos(&v).ok_or_else(|| ApiError::bad(format!("invalid until: {v}")))?)
        }
    };
    let want = f.get("label").cloned().unwrap_or_default();
    let not = f.get("label!").cloned().unwrap_or_default();
    let has = |labels: &BTreeMap<String, String>, l: &str| match l.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(l),
    };
    Ok(move |labels: &BTreeMap<String, String>, created: &str| {
        let old_enough = until.is_none_or(|u| {
            berth_oci::time::parse_rfc3339_nanos(created)
                .and_then(|c| i64::try_from(c).ok())
                .is_some_and(|c| c < u)
        });
        old_enough && want.iter().all(|l| has(labels, l)) && !not.iter().any(|l| has(labels, l))
    })
}

/// A time query parameter (`since`, `until`, the `until` filter), in nanoseconds, read by
/// the parser the CLI shares (`berth_oci::time::parse_point`).
pub fn time_nanos(s: &str) -> Option<i64> {
    berth_oci::time::parse_point(s, berth_oci::time::now_nanos()).and_then(|n| i64::try_from(n).ok())
}

/// Every value of a repeated query parameter (`names=a&names=b`).
pub fn all_values(req: &Request<Incoming>, key: &str) -> Vec<String> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boolean_query_parameters_read_as_dockerd() {
        let q = |v: &str| HashMap::from([("k".to_string(), v.to_string())]);
        for v in ["", "0", "no", "false", "False", "FALSE", "none", "NONE", " No "] {
            assert!(!flag(&q(v), "k"), "{v:?}");
            assert!(!flag_or(&q(v), "k", true), "{v:?}");
        }
        for v in ["1", "true", "True", "yes", "on", "anything"] {
            assert!(flag(&q(v), "k"), "{v:?}");
        }
        assert!(!flag(&HashMap::new(), "k"));
        assert!(flag_or(&HashMap::new(), "k", true));
    }
}
